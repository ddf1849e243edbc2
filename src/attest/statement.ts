// in-toto v1 Statements over a summarized log.
//
// The primary statement carries our predicate (https://dpndncy.io/agent/runtime-trace/v1).
//
// The standard runtime-trace v0.2 shape (https://in-toto.io/attestation/runtime-trace/v0.2) is
// built by `standardRuntimeTraceStatement` as a pure mapping of our predicate, and signed only
// when asked (`dpndncy attest --standard-trace`), into a second bundle. Why opt-in and not
// always: each signature is one more Fulcio certificate and one more permanent public Rekor
// entry per job; v0.2 has no place for what makes our trace evidence (stop-record tamper check,
// seq gaps, lost events, step attribution — they would only be extension fields that standard
// consumers ignore), so it adds interoperability, not assurance. It costs little to produce, so
// it is there for the policy engines that only understand v0.2.
import { basename } from "node:path";
import type { CiIdentity, Predicate } from "../trace/types.js";

export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const PREDICATE_TYPE = "https://dpndncy.io/agent/runtime-trace/v1";
export const STANDARD_PREDICATE_TYPE = "https://in-toto.io/attestation/runtime-trace/v0.2";
export const INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";

export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: Record<string, string>;
  annotations?: Record<string, unknown>;
}

export interface Statement<P = unknown> {
  _type: typeof STATEMENT_TYPE;
  subject: ResourceDescriptor[];
  predicateType: string;
  predicate: P;
}

const GIT_COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** The log (by SHA-256, named by its basename) and, where the platform names one, the commit. */
export function subjects(predicate: Predicate): ResourceDescriptor[] {
  const out: ResourceDescriptor[] = [
    { name: basename(predicate.log.name), digest: { sha256: predicate.log.sha256 } },
  ];
  const commit = commitSubject(predicate.ci);
  if (commit) out.push(commit);
  return out;
}

/**
 * in-toto/SLSA convention for a source revision: digest algorithm `gitCommit`, name a
 * `git+<repo-url>` URI with `@<ref>` when the ref is known (SLSA's resolvedDependencies form).
 * A commit that is not a full hex SHA-1/SHA-256 is not a digest and is left out.
 */
export function commitSubject(ci: CiIdentity | null): ResourceDescriptor | null {
  const sha = ci?.commit?.toLowerCase();
  if (!ci || !sha || !GIT_COMMIT.test(sha)) return null;
  const url = repoUrl(ci);
  const name = url ? `git+${url}${ci.ref ? `@${ci.ref}` : ""}` : "git-commit";
  return { name, digest: { gitCommit: sha } };
}

export function repoUrl(ci: CiIdentity): string | null {
  if (!ci.repository) return null;
  const server = ci.serverUrl ?? (ci.platform === "github" ? "https://github.com" : null);
  return server ? `${server.replace(/\/+$/, "")}/${ci.repository}` : null;
}

export function buildStatement(predicate: Predicate): Statement<Predicate> {
  return {
    _type: STATEMENT_TYPE,
    subject: subjects(predicate),
    predicateType: PREDICATE_TYPE,
    predicate,
  };
}

// ---- the standard shape ----

export interface StandardRuntimeTrace {
  monitor: { type: string; tracePolicy?: Record<string, unknown> };
  monitoredProcess: { hostID: string; type: string; event: string };
  monitorLog: {
    process: Record<string, unknown>[];
    network: Record<string, unknown>[];
    fileAccess: ResourceDescriptor[];
  };
  metadata: { buildStartedOn?: string; buildFinishedOn?: string };
}

export function standardRuntimeTraceStatement(p: Predicate): Statement<StandardRuntimeTrace> {
  const ci = p.ci;
  return {
    _type: STATEMENT_TYPE,
    subject: subjects(p),
    predicateType: STANDARD_PREDICATE_TYPE,
    predicate: {
      monitor: {
        type: `https://dpndncy.io/agent@${p.agent.version ?? "unknown"}`,
        tracePolicy: { mode: p.policy.mode, policySha256: p.policy.sha256 },
      },
      monitoredProcess: {
        hostID: ci?.serverUrl ?? (ci ? `https://dpndncy.io/ci/${ci.platform}` : "unknown"),
        type:
          ci?.platform === "github"
            ? "https://actions.github.io/buildtypes/workflow/v1"
            : `https://dpndncy.io/ci/${ci?.platform ?? "none"}/job/v1`,
        event: jobEvent(ci),
      },
      monitorLog: {
        // Extension field names are ours; the spec lets the monitor define process entries.
        process: p.exec.map((x) => ({
          processBinary: x.binary,
          arg1Sha256: x.arg1_sha256,
          count: x.count,
          steps: x.steps,
        })),
        network: p.egress.map((d) => ({
          ip: d.addr,
          ...(d.hostnames[0] !== undefined ? { hostname: d.hostnames[0] } : {}),
          port: d.port,
          protocol: d.proto,
          hostnames: d.hostnames,
          verdict: d.verdict,
          count: d.count,
          steps: d.steps,
        })),
        fileAccess: p.files.map((f) => ({
          name: f.path,
          annotations: { rule: f.rule, count: f.count, steps: f.steps },
        })),
      },
      metadata: {
        ...(p.agent.started ? { buildStartedOn: p.agent.started } : {}),
        ...(p.agent.stopped ? { buildFinishedOn: p.agent.stopped } : {}),
      },
    },
  };
}

/** v0.2 asks for a string that uniquely names the job; GitHub's run-attempt URL where possible. */
function jobEvent(ci: CiIdentity | null): string {
  if (!ci) return "unknown";
  const url = repoUrl(ci);
  if (ci.platform === "github" && url && ci.runId) {
    return `${url}/actions/runs/${ci.runId}/attempts/${ci.runAttempt ?? "1"}${ci.jobName ? `#${ci.jobName}` : ""}`;
  }
  return [ci.platform, ci.repository, ci.runId, ci.jobId ?? ci.jobName]
    .filter((s): s is string => s !== undefined)
    .join("/");
}

/** The DSSE payload: the statement as UTF-8 JSON (no trailing newline, stable key order as built). */
export function serializeStatement(s: Statement): Buffer {
  return Buffer.from(JSON.stringify(s), "utf8");
}
