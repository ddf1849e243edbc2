// A hand-written check for the common, well-formed event: it answers "certainly valid" or
// "ask ajv". ajv's generated validator re-tests `kind` in each of the contract's seven if/then
// branches and was a fifth of the summarizer's time; this is a single switch.
//
// Soundness rule (the one thing to keep when editing): return true ONLY for values that
// schema/event.v1.json accepts. Anything unusual (optional fields with odd values, long
// `comm`, ancestry entries that are not plain) returns false and goes to ajv, which then
// decides and words the error. The schema allows properties it does not define, so every
// property it DOES define for a kind must be checked here, or any value of it would pass;
// agent records (two per log, many properties) are left to ajv. The unit tests fuzz this
// against ajv with every property the schema defines.
import type { TraceEvent } from "./types.js";

// The same pattern ajv compiles for `ts` (ajv uses the "u" flag).
const TS = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z$/u;

// ajv's "integer": a finite number with no fractional part.
const isInt = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x);
const isUint = (x: unknown): boolean => isInt(x) && (x as number) >= 0;
const isStr = (x: unknown): x is string => typeof x === "string";
const optional = (x: unknown, ok: (x: unknown) => boolean): boolean => x === undefined || ok(x);
const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

function isStrArray(x: unknown): boolean {
  if (!Array.isArray(x)) return false;
  for (const s of x) if (typeof s !== "string") return false;
  return true;
}

const RUNTIMES = new Set(["docker", "containerd", "cri-o", "podman", "kubernetes", "buildkit"]);
const CONTAINER_ID = /^([0-9a-f]{64}|[0-9a-z]{25})$/u;
const POD = /^[0-9a-f-]{32,36}$/u;

function isContainer(x: unknown): boolean {
  return (
    isObject(x) &&
    typeof x.runtime === "string" &&
    RUNTIMES.has(x.runtime) &&
    isStr(x.id) &&
    CONTAINER_ID.test(x.id) &&
    (x.pod === null || (isStr(x.pod) && POD.test(x.pod))) &&
    optional(x.image, (i) => i === null || isStr(i)) &&
    optional(x.requested_by, (r) => r === null || isInt(r))
  );
}

function isAncestry(x: unknown): boolean {
  if (!Array.isArray(x)) return false;
  for (const a of x) if (!isObject(a) || !isInt(a.pid) || !isStr(a.comm)) return false;
  return true;
}

/** True only if `v` is certainly a valid event; false means "not decided here". */
export function certainlyValid(v: unknown): v is TraceEvent {
  if (!isObject(v)) return false;
  if (
    v.v !== 1 ||
    !isStr(v.ts) ||
    !isUint(v.pid) ||
    !isUint(v.ppid) ||
    !isUint(v.uid) ||
    !isStr(v.comm) ||
    // maxLength counts code points; UTF-16 length is never fewer.
    v.comm.length > 64 ||
    !isUint(v.cgroup) ||
    !(v.step === null || isStr(v.step)) ||
    !isUint(v.seq) ||
    !optional(v.tid, isUint) ||
    !optional(v.ancestry, isAncestry) ||
    !optional(v.container, isContainer) ||
    !TS.test(v.ts)
  ) {
    return false;
  }
  switch (v.kind) {
    case "exec":
      return isStr(v.filename) && isStrArray(v.argv) && optional(v.truncated, isBool);
    case "exit":
      return isInt(v.code) && optional(v.signal, isInt);
    case "connect":
      return (
        (v.proto === "tcp" || v.proto === "udp" || v.proto === "other") &&
        (v.family === "inet" || v.family === "inet6") &&
        isStr(v.addr) &&
        isInt(v.port) &&
        v.port >= 0 &&
        v.port <= 65535 &&
        (v.result === null || isInt(v.result)) &&
        optional(v.mapped, isBool) &&
        optional(v.source, (s) => s === "tracepoint" || s === "cgroup") &&
        optional(v.verdict, (s) => s === "allow" || s === "deny" || s === "audit") &&
        optional(v.rule, isStr) &&
        optional(
          v.op,
          (s) => s === "connect" || s === "sendmsg" || s === "socket" || s === "bind",
        ) &&
        optional(v.pending, isBool)
      );
    case "file":
      return isStr(v.path) && isInt(v.flags) && isStr(v.rule) && optional(v.path_truncated, isBool);
    case "dns":
      return (
        isStr(v.name) &&
        isStr(v.qtype) &&
        isStrArray(v.answers) &&
        (v.source === "libc" || v.source === "packet") &&
        optional(v.rcode, isInt) &&
        optional(v.server, isStr) &&
        optional(v.gai_error, isInt) &&
        optional(v.transport, (s) => s === "udp" || s === "tcp") &&
        optional(v.truncated, isBool)
      );
    case "agent":
      // Two records per log, with many optional properties: ajv alone decides them.
      return false;
    case "tamper":
      return isStr(v.what) && optional(v.detail, isStr);
    default:
      return false;
  }
}

function isBool(x: unknown): boolean {
  return typeof x === "boolean";
}
