// dpndncy verify BUNDLE --log FILE [identity options | --key PUB.pem] [--trusted-root FILE | TUF]
import { readFileSync } from "node:fs";
import { InputError, ServiceError, VerifyError } from "../attest/errors.js";
import { PREDICATE_TYPE } from "../attest/statement.js";
import { loadTrustedRoot, PUBLIC_GOOD_TUF } from "../attest/trusted-root.js";
import { sha256File, type Verified, verifyAttestation } from "../attest/verify.js";
import type { Predicate } from "../trace/types.js";
import { EXIT, type Io, one, parse, UsageError } from "./io.js";

export const VERIFY_USAGE = `usage: dpndncy verify BUNDLE --log FILE [options]
  Check that BUNDLE is a valid signature over an in-toto runtime-trace statement whose subject
  is FILE's SHA-256 (signature, certificate chain and SCT, transparency-log proof or timestamp,
  signer identity, payloadType, _type, predicateType), and that the signed trace says the
  agent ran to the end, untampered.
keyless (certificate) bundles:
  --certificate-identity X          exact certificate identity (SAN). GitHub: the URI of the
                                    workflow file that ran the job, i.e. its job_workflow_ref:
                                    https://github.com/OWNER/REPO/.github/workflows/F.yml@REF
                                    (in a reusable workflow: the called file, not the caller's)
  --certificate-identity-regexp R   or: unanchored regular expression over it (anchor with ^…$)
  --certificate-oidc-issuer I       exact OIDC issuer (required)
  trusted root (the Sigstore instance's keys), one of:
  --trusted-root FILE               a trusted_root.json; nothing is fetched (offline)
  (default)                         fetched from the instance's TUF repository, verified from
                                    its root of trust and cached
  --tuf-mirror URL                  TUF repository (default $DPNDNCY_TUF_MIRROR, else
                                    ${PUBLIC_GOOD_TUF})
  --tuf-root FILE                   initial root.json for a repository other than public-good
                                    (default $DPNDNCY_TUF_ROOT)
  --tuf-cache DIR                   cache (default $XDG_CACHE_HOME/dpndncy/tuf or ~/.cache/dpndncy/tuf)
  --offline                         use the cached TUF metadata, do not ask the repository
  --insecure-ignore-tlog            accept a bundle with no transparency-log entry even when the
                                    trusted root has a log (e.g. GitHub's private instance)
key bundles:
  --key PUB.pem                     the signer's P-256 public key
  --trusted-root FILE               optional: also check the bundle's tlog entries/timestamps
the trace (checked by default):
  fails with TRACE_TAMPERED or TRACE_INCOMPLETE unless the signed predicate says the trace is
  untampered (integrity.untampered) and complete (integrity.complete: the agent ran to the
  end), and with TRACE_NOT_CLEAN unless it says the agent stopped cleanly
  --allow-incomplete                only report those (NOT CLEAN, exit 0): evidence of a job
                                    whose agent was killed or blinded is still worth reading
  --require-clean                   one code, TRACE_NOT_CLEAN, for all three
  --require-complete                accepted for compatibility: the default
other:
  --json                            print the result as JSON
exit: 0 verified, 1 verification failed (code on stderr / in JSON), 2 usage error,
      3 an input (log, bundle, key, trusted root) could not be read or parsed,
      4 the TUF repository could not be reached (the URL and the cause are printed)`;

const OPTIONS = {
  log: { type: "string" },
  "certificate-identity": { type: "string" },
  "certificate-identity-regexp": { type: "string" },
  "certificate-oidc-issuer": { type: "string" },
  key: { type: "string" },
  "trusted-root": { type: "string" },
  "tuf-mirror": { type: "string" },
  "tuf-root": { type: "string" },
  "tuf-cache": { type: "string" },
  offline: { type: "boolean" },
  "insecure-ignore-tlog": { type: "boolean" },
  "require-clean": { type: "boolean" },
  "require-complete": { type: "boolean" },
  "allow-incomplete": { type: "boolean" },
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
    const { result, trustedRoot } = await run(bundlePath, v, io.env);
    if (v["require-clean"]) requireClean(result);
    else if (!v["allow-incomplete"]) {
      requireComplete(result);
      requireClean(result);
    }
    const clean = ourPredicate(result)?.integrity?.stopped_cleanly === true;
    io.out(
      json
        ? `${JSON.stringify({ ok: true, clean, trustedRoot, ...result }, null, 2)}\n`
        : human(result, v.log as string, trustedRoot),
    );
    return EXIT.OK;
  } catch (e) {
    if (!(e instanceof VerifyError || e instanceof InputError || e instanceof ServiceError))
      throw e;
    if (json)
      io.out(`${JSON.stringify({ ok: false, code: e.code, message: e.message }, null, 2)}\n`);
    io.err(`dpndncy verify: FAILED ${e.message}\n`);
    return e.exitCode;
  }
}

function checkCombination(v: Values): void {
  if (v.log === undefined) throw new UsageError("--log FILE is required");
  if (v["allow-incomplete"] && (v["require-clean"] || v["require-complete"])) {
    throw new UsageError("--allow-incomplete contradicts --require-clean / --require-complete");
  }

  const exact = v["certificate-identity"] !== undefined;
  const regexp = v["certificate-identity-regexp"] !== undefined;
  if (exact && regexp) {
    throw new UsageError("--certificate-identity and --certificate-identity-regexp are exclusive");
  }
  if (v.key !== undefined) {
    if (
      exact ||
      regexp ||
      v["certificate-oidc-issuer"] !== undefined ||
      v["tuf-mirror"] !== undefined ||
      v["tuf-root"] !== undefined ||
      v.offline
    ) {
      throw new UsageError(
        "--key verifies a key-signed bundle; identity and TUF options are for certificates",
      );
    }
    return;
  }
  if (!exact && !regexp) {
    throw new UsageError("give --certificate-identity or --certificate-identity-regexp (or --key)");
  }
  if (v["certificate-oidc-issuer"] === undefined)
    throw new UsageError("--certificate-oidc-issuer is required");
  if (
    v["trusted-root"] !== undefined &&
    (v["tuf-mirror"] !== undefined || v["tuf-root"] !== undefined || v.offline)
  ) {
    throw new UsageError(
      "--trusted-root is the trusted root itself; --tuf-mirror, --tuf-root and --offline are for fetching it",
    );
  }
  if (regexp) {
    try {
      new RegExp(v["certificate-identity-regexp"] as string);
    } catch (e) {
      throw new UsageError(`--certificate-identity-regexp: ${(e as Error).message}`);
    }
  }
}

function readBundle(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new InputError("UNREADABLE", `cannot read bundle ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(
      "BUNDLE_UNREADABLE",
      `${path} is not JSON (${(e as Error).message}); a truncated or partial download?`,
    );
  }
}

async function run(
  bundlePath: string,
  v: Values,
  env: Io["env"],
): Promise<{ result: Verified; trustedRoot: string | null }> {
  const bundle = readBundle(bundlePath);
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
  // a key alone is a trust anchor; certificates need the instance's root (file or TUF)
  const root =
    v.key !== undefined && v["trusted-root"] === undefined
      ? undefined
      : await loadTrustedRoot(
          {
            ...(v["trusted-root"] !== undefined ? { file: v["trusted-root"] } : {}),
            // the environment can name them once per runner (air-gapped mirrors)
            ...((v["tuf-mirror"] ?? env.DPNDNCY_TUF_MIRROR)
              ? { mirror: (v["tuf-mirror"] ?? env.DPNDNCY_TUF_MIRROR) as string }
              : {}),
            ...((v["tuf-root"] ?? env.DPNDNCY_TUF_ROOT)
              ? { tufRoot: (v["tuf-root"] ?? env.DPNDNCY_TUF_ROOT) as string }
              : {}),
            ...(v["tuf-cache"] !== undefined ? { cacheDir: v["tuf-cache"] } : {}),
            offline: v.offline ?? false,
          },
          env,
        );
  const result = verifyAttestation({
    bundle,
    logSha256,
    trustedRoot: root?.json,
    publicKeyPem,
    policy: {
      identity: v["certificate-identity"],
      identityRegExp: v["certificate-identity-regexp"],
      issuer: v["certificate-oidc-issuer"],
    },
    ...(v["insecure-ignore-tlog"] ? { requireTlog: false } : {}),
  });
  return { result, trustedRoot: root?.from ?? null };
}

function ourPredicate(r: Verified): Predicate | null {
  return r.predicateType === PREDICATE_TYPE ? (r.predicate as Predicate) : null;
}

/** --require-complete: the signed predicate must say complete and untampered, plainly. */
function requireComplete(r: Verified): void {
  const p = ourPredicate(r);
  if (!p)
    throw new VerifyError(
      "TRACE_INCOMPLETE",
      `the ${r.predicateType} predicate does not say whether the trace is complete: verify the dpndncy bundle beside it (FILE.sigstore.json), or pass --allow-incomplete`,
    );
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
  if (!p)
    throw new VerifyError(
      "TRACE_NOT_CLEAN",
      `the ${r.predicateType} predicate does not say whether the trace is clean: verify the dpndncy bundle beside it, or pass --allow-incomplete`,
    );
  if (p.integrity?.stopped_cleanly !== true) {
    throw new VerifyError(
      "TRACE_NOT_CLEAN",
      `signature verified, but the trace reports: ${(p.integrity?.problems ?? []).join(", ") || "not stopped cleanly"}`,
    );
  }
}

function human(r: Verified, log: string, trustedRoot: string | null): string {
  const p = ourPredicate(r);
  const i = p?.integrity;
  // "OK" only for a trace that says it is whole; the signature alone does not make it so
  const lines = [
    i?.stopped_cleanly
      ? `OK ${log} (sha256 ${r.logSha256}) is the attested log; the trace is complete and untampered`
      : `NOT CLEAN ${log} (sha256 ${r.logSha256}) is the attested log, but the trace ${
          i
            ? `reports: ${i.problems.join(", ") || "not stopped cleanly"}`
            : "does not say whether it is complete"
        } (accepted: --allow-incomplete)`,
  ];
  lines.push(
    r.signer.type === "certificate"
      ? `  signer: ${r.signer.identity ?? "?"} (issuer ${r.signer.issuer ?? "?"})`
      : `  signer: key ${r.signer.fingerprint}`,
  );
  for (const t of r.timestamps) lines.push(`  signed at: ${t.time} (${t.source})`);
  if (trustedRoot) lines.push(`  trusted root: ${trustedRoot}`);
  if (!r.witnessesChecked)
    lines.push("  note: transparency-log entries/timestamps not checked (no --trusted-root)");
  lines.push(`  predicate: ${r.predicateType}`);
  if (i) {
    lines.push(
      i.stopped_cleanly
        ? "  trace: agent stopped cleanly, log untampered"
        : `  trace: NOT CLEAN — ${i.problems.join(", ")}`,
    );
  }
  return `${lines.join("\n")}\n`;
}
