// dpndncy attest FILE (--key PEM | --generate-key | --keyless) [...]
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { X509Certificate } from "@sigstore/core";
import { CIContextProvider } from "@sigstore/sign";
import { InputError, SignError } from "../attest/errors.js";
import {
  type Endpoints,
  generateSigningKey,
  loadPrivateKey,
  resolveEndpoints,
  signKeyless,
  signWithKey,
  staticToken,
} from "../attest/sign.js";
import {
  buildStatement,
  type Statement,
  serializeStatement,
  standardRuntimeTraceStatement,
} from "../attest/statement.js";
import { repositoryVisibility } from "../attest/visibility.js";
import { summarizeFile } from "../trace/summarize.js";
import type { Predicate } from "../trace/types.js";
import { ciIdentity } from "./ci.js";
import { integrityLine } from "./format.js";
import { EXIT, type Io, one, parse, UsageError } from "./io.js";

export const ATTEST_USAGE = `usage: dpndncy attest FILE (--key PRIVATE.pem | --generate-key | --keyless) [options]
  Summarize FILE, wrap the predicate in an in-toto v1 Statement, sign it (DSSE) and write a
  Sigstore bundle (v0.3) to FILE.sigstore.json.
signing (choose one):
  --key PEM                  local ECDSA P-256 private key (PKCS#8 or SEC1 PEM)
  --generate-key             new P-256 key pair; the public key is written beside the bundle
                             (BUNDLE minus .sigstore.json, plus .pub.pem); the private key is
                             discarded unless --write-private-key PATH (mode 0600)
  --keyless                  Fulcio certificate from an OIDC token: --identity-token, else
                             $SIGSTORE_ID_TOKEN, else GitHub Actions' OIDC (id-token: write)
keyless endpoints (default: public-good Fulcio + Rekor for public repositories; for private
ones GitHub's instance on GitHub, and nothing elsewhere — name your own):
  --fulcio-url URL  --rekor-url URL  --tsa-url URL
  --private | --public       repository visibility (default: detected; unknown = private)
  --allow-public-rekor       let a private repository write to the public Rekor
with --key / --generate-key, --rekor-url and --tsa-url add optional witnesses.
other:
  --out PATH                 bundle path (default FILE.sigstore.json)
  --standard-trace           also sign the in-toto runtime-trace v0.2 statement into
                             FILE.runtime-trace.sigstore.json
  --json                     print the result as JSON
exit: 0 signed, 2 usage error or refused configuration, 3 input unreadable, 4 signing failed`;

const OPTIONS = {
  key: { type: "string" },
  "generate-key": { type: "boolean" },
  "write-private-key": { type: "string" },
  keyless: { type: "boolean" },
  "identity-token": { type: "string" },
  "fulcio-url": { type: "string" },
  "rekor-url": { type: "string" },
  "tsa-url": { type: "string" },
  private: { type: "boolean" },
  public: { type: "boolean" },
  "allow-public-rekor": { type: "boolean" },
  out: { type: "string" },
  "standard-trace": { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = ReturnType<typeof parse<typeof OPTIONS>>["values"];

export async function attest(argv: string[], io: Io): Promise<number> {
  let file: string;
  let v: Values;
  try {
    const parsed = parse(argv, OPTIONS);
    v = parsed.values;
    if (v.help) {
      io.out(`${ATTEST_USAGE}\n`);
      return EXIT.OK;
    }
    file = one(parsed.positionals, "log FILE");
    checkCombination(v);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`dpndncy attest: ${e.message}\n${ATTEST_USAGE}\n`);
    return EXIT.USAGE;
  }
  try {
    return await run(file, v, io);
  } catch (e) {
    if (e instanceof SignError || e instanceof InputError) {
      io.err(`dpndncy attest: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof UsageError) {
      io.err(`dpndncy attest: ${e.message}\n`);
      return EXIT.USAGE;
    }
    throw e;
  }
}

function checkCombination(v: Values): void {
  const modes = [v.key !== undefined, v["generate-key"] === true, v.keyless === true];
  const n = modes.filter(Boolean).length;
  if (n !== 1) {
    throw new UsageError(
      n === 0
        ? "choose --key, --generate-key or --keyless"
        : "--key, --generate-key and --keyless are exclusive",
    );
  }
  if (v.private && v.public) throw new UsageError("--private and --public are exclusive");
  if (v["write-private-key"] !== undefined && !v["generate-key"]) {
    throw new UsageError("--write-private-key needs --generate-key");
  }
  if (!v.keyless) {
    for (const k of [
      "identity-token",
      "fulcio-url",
      "private",
      "public",
      "allow-public-rekor",
    ] as const) {
      if (v[k] !== undefined) throw new UsageError(`--${k} only applies to --keyless`);
    }
  }
}

interface Signed {
  bundle: string;
  statement: Statement;
  extra?: string;
  publicKey?: string;
  signer: string;
}

async function run(file: string, v: Values, io: Io): Promise<number> {
  let predicate: Predicate;
  try {
    predicate = await summarizeFile(file, { ci: ciIdentity(io.env) });
  } catch (e) {
    throw new InputError("UNREADABLE", `cannot read ${file}: ${(e as Error).message}`);
  }
  const out = v.out ?? `${file}.sigstore.json`;
  const statements: Statement[] = [buildStatement(predicate)];
  if (v["standard-trace"]) statements.push(standardRuntimeTraceStatement(predicate));
  const paths = [out, `${file}.runtime-trace.sigstore.json`];

  const sign = await signerFor(v, predicate, io, out);
  const bundles = [];
  for (const s of statements) bundles.push(await sign.sign(serializeStatement(s)));
  for (const [i, b] of bundles.entries())
    writeFileSync(paths[i] as string, `${JSON.stringify(b)}\n`);

  const cert = bundles[0]?.verificationMaterial.certificate?.rawBytes;
  const signer = cert
    ? `certificate ${X509Certificate.parse(Buffer.from(cert, "base64")).subjectAltName ?? "?"}`
    : sign.label;
  const result: Signed = {
    bundle: out,
    statement: statements[0] as Statement,
    signer,
    ...(bundles.length > 1 ? { extra: paths[1] } : {}),
    ...(sign.publicKeyPath ? { publicKey: sign.publicKeyPath } : {}),
  };
  if (v.json) {
    io.out(
      `${JSON.stringify({ ok: true, bundle: result.bundle, standardTraceBundle: result.extra ?? null, publicKey: result.publicKey ?? null, signer, subject: result.statement.subject, endpoints: sign.endpoints ?? null }, null, 2)}\n`,
    );
  } else {
    io.out(`signed ${file} (sha256 ${predicate.log.sha256})\n`);
    io.out(`  bundle: ${out}${result.extra ? `, ${result.extra}` : ""}\n`);
    io.out(`  signer: ${signer}\n`);
    if (result.publicKey) io.out(`  public key: ${result.publicKey}\n`);
    io.out(`  ${integrityLine(predicate)}\n`);
  }
  return EXIT.OK;
}

interface SignerChoice {
  sign: (payload: Buffer) => ReturnType<typeof signWithKey>;
  label: string;
  publicKeyPath?: string;
  endpoints?: Endpoints;
}

async function signerFor(
  v: Values,
  predicate: Predicate,
  io: Io,
  out: string,
): Promise<SignerChoice> {
  const witnesses = { rekorURL: v["rekor-url"], tsaURL: v["tsa-url"] };
  if (v.key !== undefined) {
    let pem: string;
    try {
      pem = readFileSync(v.key, "utf8");
    } catch (e) {
      throw new InputError("UNREADABLE", `cannot read key ${v.key}: ${(e as Error).message}`);
    }
    loadPrivateKey(pem); // fail before any network call
    return {
      sign: (p) => signWithKey(p, { privateKeyPem: pem, ...witnesses }),
      label: `key ${v.key}`,
    };
  }
  if (v["generate-key"]) {
    const pair = generateSigningKey();
    const pubPath = `${out.endsWith(".sigstore.json") ? out.slice(0, -".sigstore.json".length) : out}.pub.pem`;
    const privPath = v["write-private-key"];
    if (privPath !== undefined) {
      if (existsSync(privPath))
        throw new UsageError(`${privPath} exists; not overwriting a private key`);
      writeFileSync(privPath, pair.privateKeyPem, { mode: 0o600 });
    }
    writeFileSync(pubPath, pair.publicKeyPem);
    return {
      sign: (p) => signWithKey(p, { privateKeyPem: pair.privateKeyPem, ...witnesses }),
      label: "generated key",
      publicKeyPath: pubPath,
    };
  }
  const visibility = v.private
    ? "private"
    : v.public
      ? "public"
      : repositoryVisibility(predicate.ci, io.env, (p) => readFileSync(p, "utf8"));
  const endpoints = resolveEndpoints({
    private: visibility !== "public",
    platform: predicate.ci?.platform,
    fulcioURL: v["fulcio-url"],
    rekorURL: v["rekor-url"],
    tsaURL: v["tsa-url"],
    allowPublicRekor: v["allow-public-rekor"],
  });
  // Fetched now, right before signing, so a missing token is its own error, not a Fulcio one.
  const identityProvider = staticToken(await identityToken(v["identity-token"], io.env));
  return {
    sign: (p) => signKeyless(p, { endpoints, identityProvider }),
    label: "keyless",
    endpoints,
  };
}

/** --identity-token, then SIGSTORE_ID_TOKEN (GitLab id_tokens, others), then GitHub's OIDC endpoint. */
async function identityToken(flag: string | undefined, env: Io["env"]): Promise<string> {
  const token = flag ?? env.SIGSTORE_ID_TOKEN;
  if (token) return token;
  if (env.ACTIONS_ID_TOKEN_REQUEST_URL && env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
    try {
      return await new CIContextProvider("sigstore").getToken();
    } catch (e) {
      throw new SignError("NO_IDENTITY_TOKEN", `GitHub OIDC token request failed: ${String(e)}`);
    }
  }
  throw new SignError(
    "NO_IDENTITY_TOKEN",
    "no OIDC token: pass --identity-token, set SIGSTORE_ID_TOKEN, or on GitHub grant `permissions: id-token: write`",
  );
}
