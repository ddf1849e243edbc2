// The independent check: a DSSE envelope we produced, verified by code that is not ours and
// not sigstore-js — Debian's python3-cryptography and python3-securesystemslib, with the PAE
// computed in Python from the spec. Needs /usr/bin/python3 with both packages (scripts/prereqs).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SerializedBundle } from "@sigstore/bundle";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  generateSigningKey,
  signKeyless,
  signWithKey,
  staticToken,
} from "../../src/attest/sign.js";
import { buildStatement, serializeStatement } from "../../src/attest/statement.js";
import { summarizeFile } from "../../src/trace/summarize.js";
import {
  mintIdentityToken,
  type SigstoreStandIn,
  startSigstoreStandIn,
} from "../support/sigstore-stand-in.js";

const PYTHON = "/usr/bin/python3";
const VERIFY_PY = `
import base64, hashlib, json, sys
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import Signature, SSlibKey

bundle = json.load(open(sys.argv[1]))
env = bundle["dsseEnvelope"]
vm = bundle["verificationMaterial"]
if "certificate" in vm:
    cert = x509.load_der_x509_certificate(base64.b64decode(vm["certificate"]["rawBytes"]))
    pub = cert.public_key()
else:
    pub = serialization.load_pem_public_key(open(sys.argv[2], "rb").read())
payload = base64.b64decode(env["payload"])
ptype = env["payloadType"].encode()
# DSSE protocol.md: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
sig = base64.b64decode(env["signatures"][0]["sig"])
try:
    pub.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
except InvalidSignature:
    print("cryptography: BAD"); sys.exit(1)
pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
keyid = hashlib.sha256(pem.encode()).hexdigest()  # securesystemslib wants a hex keyid
key = SSlibKey(keyid, "ecdsa", "ecdsa-sha2-nistp256", {"public": pem})
try:
    key.verify_signature(Signature(keyid, sig.hex()), pae)
except Exception as e:
    print("securesystemslib: BAD", type(e).__name__); sys.exit(1)
st = json.loads(payload)
print("OK", st["_type"], st["predicateType"], st["subject"][0]["digest"]["sha256"])
`;

const FIXTURE = join(import.meta.dirname, "../fixtures/attack.ndjson");
const dir = mkdtempSync(join(tmpdir(), "dpndncy-py-"));
const script = join(dir, "verify.py");
writeFileSync(script, VERIFY_PY);

function python(
  bundle: SerializedBundle,
  publicKeyPem = "",
): { status: number | null; out: string } {
  const b = join(dir, `b-${Math.random()}.json`);
  const k = join(dir, "key.pub");
  writeFileSync(b, JSON.stringify(bundle));
  writeFileSync(k, publicKeyPem);
  // Debian's interpreter and packages, not whatever python3 is first on PATH.
  const r = spawnSync(PYTHON, [script, b, k], { encoding: "utf8", env: { PATH: "/usr/bin:/bin" } });
  if (r.error) throw new Error(`cannot run ${PYTHON}: ${r.error.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

let standIn: SigstoreStandIn;
let statement: Buffer;
let logSha: string;
beforeAll(async () => {
  standIn = await startSigstoreStandIn();
  const p = await summarizeFile(FIXTURE);
  logSha = p.log.sha256;
  statement = serializeStatement(buildStatement(p));
});
afterAll(async () => {
  await standIn.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("independent DSSE verification in Python (cryptography + securesystemslib)", () => {
  it("accepts a keyless envelope with the Fulcio certificate's key", async () => {
    const b = await signKeyless(statement, {
      endpoints: { fulcioURL: standIn.fulcioURL, rekorURL: standIn.rekorURL },
      identityProvider: staticToken(
        mintIdentityToken({ iss: "https://issuer.example", sub: "https://id.example" }),
      ),
    });
    const r = python(b);
    expect(r.out).toBe(
      `OK https://in-toto.io/Statement/v1 https://dpndncy.io/agent/runtime-trace/v1 ${logSha}`,
    );
    expect(r.status).toBe(0);
  });

  it("accepts a local-key envelope, and rejects it once the payload is changed", async () => {
    const { privateKeyPem, publicKeyPem } = generateSigningKey();
    const b = await signWithKey(statement, { privateKeyPem });
    expect(python(b, publicKeyPem)).toEqual({
      status: 0,
      out: `OK https://in-toto.io/Statement/v1 https://dpndncy.io/agent/runtime-trace/v1 ${logSha}`,
    });
    const tampered = structuredClone(b);
    if (!tampered.dsseEnvelope) throw new Error("no envelope");
    tampered.dsseEnvelope.payload = Buffer.from(
      statement.toString().replace("203.0.113.66", "203.0.113.67"),
    ).toString("base64");
    expect(python(tampered, publicKeyPem)).toEqual({ status: 1, out: "cryptography: BAD" });
  });
});
