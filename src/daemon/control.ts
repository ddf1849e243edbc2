/**
 * The control stream of `dpndncy-agent daemon` (docs/daemon.md): one JSON object per line on
 * the agent's stdout. schema/daemon-control.v1.json is the one definition of the shape; every
 * line is validated against it before anything acts on it, and the types below mirror it
 * (test/unit/daemon-control.test.ts checks both name the same line types).
 */
import { Ajv2020 } from "ajv/dist/2020.js";
import schema from "../../schema/daemon-control.v1.json" with { type: "json" };

type Counts = Record<string, number>;
/** A count, or counts per cause (the stop record's `lost` shape). */
export type Lost = number | Counts;

interface Base {
  ts: string;
}

export interface DaemonStart extends Base {
  type: "daemon-start";
  pid: number;
  mode: "observe" | "enforce";
  jobs_dir: string;
  policy_dir: string | null;
  cgroup: string | null;
  /** The agent's own host log (start and stop records, tamper events), when it writes one. */
  log?: string | null;
  attach: Record<string, unknown>;
  kernel: string | null;
}

export interface JobStart extends Base {
  type: "job-start";
  job: string;
  log: string;
  pid: number;
  cgroup: string | null;
  container: { runtime: string; id: string; pod?: string | null } | null;
  project: string | null;
  name: string | null;
  /** Relative to the policy dir, or "default"; null in observe mode. */
  policy: string | null;
}

export interface JobEnd extends Base {
  type: "job-end";
  job: string;
  log: string;
  reason: "idle" | "daemon-stop";
  complete: boolean;
  events: Counts;
  lost: Lost;
  /** Absent when the stop record could not be written. */
  log_sha256?: string;
  duration_s: number;
  project?: string | null;
  name?: string | null;
}

export interface Deny extends Base {
  type: "deny";
  /** Absent for a process under the enforced cgroup that belongs to no job. */
  job?: string | null;
  project?: string | null;
  name?: string | null;
  /** The connect record exactly as written to the job's log (schema/event.v1.json). */
  record: { kind: "connect" } & Record<string, unknown>;
}

export interface Stats extends Base {
  type: "stats";
  events: Counts;
  verdicts: { allow: number; deny: number } & Counts;
  lost: Lost;
  unattributed: number;
  jobs_active: number;
  jobs_started: number;
  jobs_ended: number;
  policy_reloads: number;
  policy_reload_failures: number;
}

export interface PolicyReload extends Base {
  type: "policy-reload";
  ok: boolean;
  policies: number | string[];
  error?: string;
}

export interface DaemonStop extends Base {
  type: "daemon-stop";
  jobs_closed: number;
  events: number | Counts;
  lost: Lost;
}

export interface AgentError extends Base {
  type: "error";
  message: string;
}

export type ControlLine =
  | DaemonStart
  | JobStart
  | JobEnd
  | Deny
  | Stats
  | PolicyReload
  | DaemonStop
  | AgentError;

export type ControlType = ControlLine["type"];

export const CONTROL_TYPES: readonly ControlType[] = [
  "daemon-start",
  "job-start",
  "job-end",
  "deny",
  "stats",
  "policy-reload",
  "daemon-stop",
  "error",
];

const validate = new Ajv2020({
  allErrors: false,
  strict: true,
  strictRequired: false,
  discriminator: true,
}).compile<ControlLine>(schema);

export type Parsed = { ok: true; line: ControlLine } | { ok: false; error: string };

/** Parses and validates one control line; never throws. */
export function parseControlLine(text: string): Parsed {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `not JSON: ${(e as Error).message}` };
  }
  if (validate(value)) return { ok: true, line: value };
  const err = validate.errors?.[0];
  const at = err?.instancePath ? ` at ${err.instancePath}` : "";
  const extra =
    err?.keyword === "discriminator"
      ? ` (type ${JSON.stringify((value as { type?: unknown })?.type)})`
      : err?.keyword === "required"
        ? ` "${(err.params as { missingProperty: string }).missingProperty}"`
        : "";
  return { ok: false, error: `not a control line${at}: ${err?.message ?? "invalid"}${extra}` };
}

/** The sum of a `lost` field, whichever shape it has. */
export function lostTotal(lost: Lost): number {
  return typeof lost === "number" ? lost : Object.values(lost).reduce((a, b) => a + b, 0);
}
