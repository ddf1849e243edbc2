// A local Fulcio + Rekor + TSA on 127.0.0.1 for offline tests (DESIGN §7: the real client
// library against a local server speaking the service's protocol). The request handlers are
// @sigstore/mock's — real CA with an embedded SCT from a CT log, real signed Rekor entries with
// SET, checkpoint and inclusion proof, real RFC 3161 timestamps — served here by node:http
// instead of nock, so @sigstore/sign talks to them over a real socket. The stand-in also
// writes the matching trusted root (protobuf-specs JSON) for @sigstore/verify.
import { createHash, generateKeyPairSync } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { RFC3161Timestamp } from "@sigstore/core";
import {
  fulcioHandler,
  type HandlerFn,
  initializeCA,
  initializeCTLog,
  initializeTLog,
  initializeTSA,
  rekorHandler,
  tsaHandler,
} from "@sigstore/mock";
import { HashAlgorithm, PublicKeyDetails, TrustedRoot } from "@sigstore/protobuf-specs";

export interface StandInOptions {
  /** Fulcio's clock: certificates are valid for 10 minutes from it. */
  caClock?: Date;
  /** Rekor's clock: the entry's integrated time. */
  rekorClock?: Date;
  tsaClock?: Date;
  /**
   * Rekor logs the first entry but answers 409 Conflict with the entry's Location, as real
   * Rekor does when a retried upload meets the entry its first attempt created; the entry is
   * then served at GET /api/v1/log/entries/<uuid>.
   */
  rekorConflictOnce?: boolean;
}

export interface SigstoreStandIn {
  url: string;
  fulcioURL: string;
  rekorURL: string;
  tsaURL: string;
  /** protobuf-specs JSON of a TrustedRoot naming this stand-in's CA, CT log, Rekor and TSA. */
  trustedRoot: unknown;
  /** Every request path served, in order (lets tests prove which services were used). */
  requests: string[];
  close(): Promise<void>;
}

/** An OIDC identity token as Fulcio's mock reads it (it decodes, it does not verify). */
export function mintIdentityToken(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  return `${b64({ alg: "RS256", typ: "JWT" })}.${b64({ aud: "sigstore", iat: now, exp: now + 600, ...claims })}.c2ln`;
}

const bytes = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
const p256 = () => generateKeyPairSync("ec", { namedCurve: "prime256v1" });

export async function startSigstoreStandIn(o: StandInOptions = {}): Promise<SigstoreStandIn> {
  const requests: string[] = [];
  const routes = new Map<string, HandlerFn>();
  const server = createServer((req, res) => void serve(routes, requests, req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const ctKeys = p256();
  const ctlog = await initializeCTLog(ctKeys, o.caClock);
  const ca = await initializeCA(p256(), ctlog, o.caClock);
  const tlog = await initializeTLog(url, p256(), o.rekorClock);
  const tsa = await initializeTSA(p256(), o.tsaClock);
  const fulcio = fulcioHandler(ca);
  routes.set(fulcio.path, fulcio.fn);
  const tsaRoute = tsaHandler(tsa);
  routes.set(tsaRoute.path, (body) => reissueUnparseable(tsaRoute.fn, body));
  const rekor = rekorHandler(tlog);
  let conflicts = o.rekorConflictOnce ? 1 : 0;
  routes.set(rekor.path, async (body) => {
    const r = await rekor.fn(canonicalizeDsseEntry(body));
    if (r.statusCode !== 201 || typeof r.response !== "string") return r;
    const uuid = Object.keys(JSON.parse(r.response) as object)[0] ?? "";
    const entry = r.response;
    routes.set(`GET ${rekor.path}/${uuid}`, async () => ({
      statusCode: 200,
      response: entry,
      contentType: "application/json",
    }));
    if (conflicts === 0) return r;
    conflicts--;
    return {
      statusCode: 409,
      response: JSON.stringify({ code: 409, message: "An equivalent entry already exists" }),
      contentType: "application/json",
      location: `${rekor.path}/${uuid}`,
    };
  });

  // Trusted since long before any clock a test may set.
  const validFor = { start: new Date("2020-01-01T00:00:00Z"), end: undefined };
  const key = (rawBytes: Buffer) => ({
    rawBytes,
    keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
    validFor,
  });
  const root: TrustedRoot = {
    mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    tlogs: [
      {
        baseUrl: url,
        hashAlgorithm: HashAlgorithm.SHA2_256,
        publicKey: key(tlog.publicKey),
        logId: { keyId: createHash("sha256").update(tlog.publicKey).digest() },
        checkpointKeyId: undefined,
        operator: "stand-in",
      },
    ],
    certificateAuthorities: [
      {
        subject: { organization: "sigstore.mock", commonName: "sigstore" },
        uri: url,
        certChain: { certificates: [{ rawBytes: bytes(ca.rootCertificate) }] },
        validFor,
        operator: "stand-in",
      },
    ],
    ctlogs: [
      {
        baseUrl: url,
        hashAlgorithm: HashAlgorithm.SHA2_256,
        publicKey: key(ctlog.publicKey),
        logId: { keyId: bytes(ctlog.logID) },
        checkpointKeyId: undefined,
        operator: "stand-in",
      },
    ],
    timestampAuthorities: [
      {
        subject: { organization: "sigstore.mock", commonName: "sigstore-tsa" },
        uri: url,
        certChain: {
          certificates: [
            { rawBytes: bytes(tsa.intCertificate) },
            { rawBytes: bytes(tsa.rootCertificate) },
          ],
        },
        validFor,
        operator: "stand-in",
      },
    ],
  };

  return {
    url,
    fulcioURL: url,
    rekorURL: url,
    tsaURL: url,
    trustedRoot: TrustedRoot.toJSON(root),
    requests,
    close: () => new Promise<void>((resolve, reject) => closeServer(server, resolve, reject)),
  };
}

/**
 * Works around a mismatch between @sigstore/mock 0.12 and @sigstore/core 3.2: asn1js writes a
 * GeneralizedTime fraction DER-style, without trailing zeros (".36Z"), and core's parser takes
 * exactly three digits or none, so about one timestamp in ten could not be parsed ("invalid
 * time"). The stand-in asks the mock TSA again (a millisecond later) until core can read it.
 */
async function reissueUnparseable(fn: HandlerFn, body: string): ReturnType<HandlerFn> {
  for (let attempt = 0; ; attempt++) {
    const r = await fn(body);
    if (r.statusCode !== 201 || typeof r.response === "string" || attempt >= 20) return r;
    try {
      void RFC3161Timestamp.parse(Buffer.from(bytes(r.response))).signingTime;
      return r;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
}

/**
 * Rekor does not log a proposed `dsse` entry as submitted: it verifies it and stores the
 * canonical body (rekor pkg/types/dsse/v0.0.1: payloadHash, envelopeHash, and one
 * {signature, verifier} per signature). The mock logs the request verbatim, which verifiers
 * (rightly) reject, so the stand-in does Rekor's canonicalisation step before the mock signs
 * the entry. Other kinds pass through untouched.
 */
export function canonicalizeDsseEntry(body: string): string {
  const req = JSON.parse(body) as {
    kind?: string;
    apiVersion?: string;
    spec?: { proposedContent?: { envelope: string; verifiers: string[] } };
  };
  const proposed = req.spec?.proposedContent;
  if (req.kind !== "dsse" || !proposed) return body;
  const env = JSON.parse(proposed.envelope) as { payload: string; signatures: { sig: string }[] };
  const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
  return JSON.stringify({
    apiVersion: req.apiVersion,
    kind: "dsse",
    spec: {
      envelopeHash: { algorithm: "sha256", value: sha(proposed.envelope) },
      payloadHash: { algorithm: "sha256", value: sha(Buffer.from(env.payload, "base64")) },
      signatures: env.signatures.map((sig, i) => ({
        signature: sig.sig,
        verifier: proposed.verifiers[i] ?? proposed.verifiers[0],
      })),
    },
  });
}

function closeServer(server: Server, resolve: () => void, reject: (e: Error) => void): void {
  server.close((e) => (e ? reject(e) : resolve()));
  server.closeAllConnections();
}

async function serve(
  routes: Map<string, HandlerFn>,
  requests: string[],
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const path = new URL(req.url ?? "/", "http://x").pathname;
  requests.push(`${req.method} ${path}`);
  const fn = req.method === "POST" ? routes.get(path) : routes.get(`${req.method} ${path}`);
  if (!fn) {
    res.writeHead(404, { "content-type": "text/plain" }).end(`no route ${req.method} ${path}`);
    return;
  }
  const r: Awaited<ReturnType<HandlerFn>> & { location?: string } = await fn(
    Buffer.concat(chunks).toString("utf8"),
  );
  const body = typeof r.response === "string" ? r.response : bytes(r.response);
  res
    .writeHead(r.statusCode, {
      "content-type": r.contentType ?? "text/plain",
      ...(r.location ? { location: r.location } : {}),
    })
    .end(body);
}
