// dpndncy verify BUNDLE --log FILE [identity options | --key PUB.pem] [--trusted-root FILE]
import { readFileSync } from "node:fs";
import { InputError, VerifyError } from "../attest/errors.js";
import { PREDICATE_TYPE } from "../attest/statement.js";
import { sha256File, type Verified, verifyAttestation } from "../attest/verify.js";
import type { Predicate } from "../trace/types.js";
import { EXIT, type Io, one, parse, UsageError } from "./io.js";

export const VERIFY_USAGE = `usage: dpndncy verify BUNDLE --log FILE [options]
  Check that BUNDLE is a valid signature over an in-toto runtime-trace statement whose subject
  is FILE's SHA-256: signature, certificate chain and SCT, transparency-log proof or timestamp,
  signer identity, payloadType, _type and predicateType.
keyless (certificate) bundles — all three required:
  --certificate-identity X          exact certificate identity (SAN)
  --certificate-identity-regexp R   or: unanchored regular expression over it (anchor with ^…$)
  --certificate-oidc-issuer I       exact OIDC issuer
  --trusted-root FILE               trusted_root.json of the Sigstore instance that signed
  --insecure-ignore-tlog            accept a bundle with no transparency-log entry even when the
                                    trusted root has a log (e.g. GitHub's private instance)
key bundles:
  --key PUB.pem                     the signer's P-256 public key
  --trusted-root FILE               optional: also check the bundle's tlog entries/timestamps
other:
  --require-complete                also fail unless the predicate says the trace is complete
                                    (integrity.complete: the agent ran to the end) and untampered
                                    (integrity.untampered): codes TRACE_TAMPERED, TRACE_INCOMPLETE
  --require-clean                   the same check, one code for both: TRACE_NOT_CLEAN
  --json                            print the result as JSON
exit: 0 verified, 1 verification failed (code on stderr / in JSON), 2 usage error,
      3 an input (log, bundle, key, trusted root) could not be read or parsed`;

const OPTIONS = {
  log: { type: "string" },
  "certificate-identity": { type: "string" },
  "certificate-identity-regexp": { type: "string" },
  "certificate-oidc-issuer": { type: "string" },
  key: { type: "string" },
  "trusted-root": { type: "string" },
  "insecure-ignore-tlog": { type: "boolean" },
  "require-clean": { type: "boolean" },
  "require-complete": { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = ReturnType<typeof parse<typeof OPTIONS>>["values"];

export async function verify(argv: string[], io: Io): Promise<number> {
  let bundlePath: string;
  let v: Values;
  try {
    const parsed = parse(argv, OPTIONS);
    v = parsed.values;
    if (v.help) {
      io.out(`${VERIFY_USAGE}\n`);
      return EXIT.OK;
    }
    bundlePath = one(parsed.positionals, "BUNDLE");
    checkCombination(v);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`dpndncy verify: ${e.message}\n${VERIFY_USAGE}\n`);
    return EXIT.USAGE;
  }
  const json = v.json ?? false;
  try {
    const result = await run(bundlePath, v);
    if (v["require-complete"]) requireComplete(result);
    if (v["require-clean"]) requireClean(result);
    io.out(
      json
        ? `${JSON.stringify({ ok: true, ...result }, null, 2)}\n`
        : human(result, v.log as string),
    );
    return EXIT.OK;
  } catch (e) {
    if (!(e instanceof VerifyError || e instanceof InputError)) throw e;
    if (json)
      io.out(`${JSON.stringify({ ok: false, code: e.code, message: e.message }, null, 2)}\n`);
    io.err(`dpndncy verify: FAILED ${e.message}\n`);
    return e.exitCode;
  }
}

function checkCombination(v: Values): void {
  if (v.log === undefined) throw new UsageError("--log FILE is required");
  const exact = v["certificate-identity"] !== undefined;
  const regexp = v["certificate-identity-regexp"] !== undefined;
  if (exact && regexp) {
    throw new UsageError("--certificate-identity and --certificate-identity-regexp are exclusive");
  }
  if (v.key !== undefined) {
    if (exact || regexp || v["certificate-oidc-issuer"] !== undefined) {
      throw new UsageError(
        "--key verifies a key-signed bundle; identity options are for certificates",
      );
    }
    return;
  }
  if (!exact && !regexp) {
    throw new UsageError("give --certificate-identity or --certificate-identity-regexp (or --key)");
  }
  if (v["certificate-oidc-issuer"] === undefined)
    throw new UsageError("--certificate-oidc-issuer is required");
  if (v["trusted-root"] === undefined)
    throw new UsageError("--trusted-root is required for keyless bundles");
  if (regexp) {
    try {
      new RegExp(v["certificate-identity-regexp"] as string);
    } catch (e) {
      throw new UsageError(`--certificate-identity-regexp: ${(e as Error).message}`);
    }
  }
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new InputError("UNREADABLE", `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    if (what === "bundle") throw new VerifyError("BUNDLE_INVALID", `${path} is not JSON`);
    throw new InputError("TRUSTED_ROOT_INVALID", `${path} is not JSON: ${(e as Error).message}`);
  }
}

async function run(bundlePath: string, v: Values): Promise<Verified> {
  const bundle = readJson(bundlePath, "bundle");
  const trustedRoot =
    v["trusted-root"] === undefined ? undefined : readJson(v["trusted-root"], "trusted root");
  let publicKeyPem: string | undefined;
  if (v.key !== undefined) {
    try {
      publicKeyPem = readFileSync(v.key, "utf8");
    } catch (e) {
      throw new InputError("UNREADABLE", `cannot read key ${v.key}: ${(e as Error).message}`);
    }
  }
  let logSha256: string;
  try {
    logSha256 = await sha256File(v.log as string);
  } catch (e) {
    throw new InputError("UNREADABLE", `cannot read log ${v.log}: ${(e as Error).message}`);
  }
  return verifyAttestation({
    bundle,
    logSha256,
    trustedRoot,
    publicKeyPem,
    policy: {
      identity: v["certificate-identity"],
      identityRegExp: v["certificate-identity-regexp"],
      issuer: v["certificate-oidc-issuer"],
    },
    ...(v["insecure-ignore-tlog"] ? { requireTlog: false } : {}),
  });
}

function ourPredicate(r: Verified): Predicate | null {
  return r.predicateType === PREDICATE_TYPE ? (r.predicate as Predicate) : null;
}

/** --require-complete: the signed predicate must say complete and untampered, plainly. */
function requireComplete(r: Verified): void {
  const p = ourPredicate(r);
  if (!p)
    throw new VerifyError("TRACE_INCOMPLETE", "--require-complete needs the dpndncy predicate");
  const i = p.integrity;
  const problems = (i?.problems ?? []).join(", ");
  if (i?.untampered !== true) {
    const what = (i?.tamper_events ?? []).map((t) => t.what);
    throw new VerifyError(
      "TRACE_TAMPERED",
      `signature verified, but the trace is not untampered: ${problems || "integrity.untampered is not true"}${what.length ? ` (tamper: ${[...new Set(what)].join(", ")})` : ""}`,
    );
  }
  if (i.complete !== true || i.alive_to_end !== true) {
    throw new VerifyError(
      "TRACE_INCOMPLETE",
      `signature verified, but the trace is not complete: ${problems || "integrity.complete is not true"}${i.stop_reason ? ` (${i.stop_reason})` : ""}`,
    );
  }
}

function requireClean(r: Verified): void {
  const p = ourPredicate(r);
  if (!p) throw new VerifyError("TRACE_NOT_CLEAN", "--require-clean needs the dpndncy predicate");
  if (p.integrity?.stopped_cleanly !== true) {
    throw new VerifyError(
      "TRACE_NOT_CLEAN",
      `signature verified, but the trace reports: ${(p.integrity?.problems ?? []).join(", ") || "not stopped cleanly"}`,
    );
  }
}

function human(r: Verified, log: string): string {
  const lines = [`OK ${log} (sha256 ${r.logSha256}) is the attested log`];
  lines.push(
    r.signer.type === "certificate"
      ? `  signer: ${r.signer.identity ?? "?"} (issuer ${r.signer.issuer ?? "?"})`
      : `  signer: key ${r.signer.fingerprint}`,
  );
  for (const t of r.timestamps) lines.push(`  signed at: ${t.time} (${t.source})`);
  if (!r.witnessesChecked)
    lines.push("  note: transparency-log entries/timestamps not checked (no --trusted-root)");
  lines.push(`  predicate: ${r.predicateType}`);
  const p = ourPredicate(r);
  if (p?.integrity) {
    lines.push(
      p.integrity.stopped_cleanly
        ? "  trace: agent stopped cleanly, log untampered"
        : `  trace: NOT CLEAN — ${p.integrity.problems.join(", ")}`,
    );
  }
  return `${lines.join("\n")}\n`;
}
