// Types shared by the summarizer, the statement builder and the CLI.
// The event shapes mirror schema/event.v1.json (owned by the agent side); the predicate shape is
// ours and is defined as JSON Schema in schema/predicate.v1.json — keep the two in step.

/** Job identity: defined once, by the platform detector. */
import type { CiIdentity } from "../platform/detect.js";

export type { CiIdentity };

// ---- events (one NDJSON line each) ----

export type EventKind = "exec" | "exit" | "connect" | "file" | "dns" | "agent" | "tamper";
export const EVENT_KINDS: readonly EventKind[] = [
  "exec",
  "exit",
  "connect",
  "file",
  "dns",
  "agent",
  "tamper",
];

interface EventBase {
  v: 1;
  kind: EventKind;
  ts: string;
  seq?: number;
  pid: number;
  tid?: number;
  ppid: number;
  uid: number;
  comm: string;
  cgroup: number;
  step: string | null;
  ancestry?: { pid: number; comm: string }[];
  /** the container of the task, from its cgroup path (agent-c/records/containers.c) */
  container?: ContainerInfo;
}

export interface ContainerInfo {
  runtime: "docker" | "containerd" | "cri-o" | "podman" | "kubernetes" | "buildkit";
  id: string;
  pod: string | null;
  /** Docker: the image the container was created from (null: unknown) */
  image?: string | null;
  /** Docker and BuildKit: pid of the API client that asked for the container (its step is the container's) */
  requested_by?: number | null;
}

export interface ExecEvent extends EventBase {
  kind: "exec";
  filename: string;
  argv: string[];
  truncated?: boolean;
}
export interface ExitEvent extends EventBase {
  kind: "exit";
  code: number;
  signal?: number;
}
export interface ConnectEvent extends EventBase {
  kind: "connect";
  proto: "tcp" | "udp" | "other";
  family: "inet" | "inet6";
  addr: string;
  port: number;
  mapped?: boolean;
  result: number | null;
  source?: "tracepoint" | "cgroup";
  verdict?: Verdict;
  rule?: string;
  /** flushed at the agent's stop while its result was still unknown */
  pending?: boolean;
}
export interface FileEvent extends EventBase {
  kind: "file";
  path: string;
  flags: number;
  rule: string;
}
export interface DnsEvent extends EventBase {
  kind: "dns";
  name: string;
  qtype: string;
  answers: string[];
  source: "libc" | "packet";
  rcode?: number;
  server?: string;
}
export interface AgentEvent extends EventBase {
  kind: "agent";
  event: "start" | "stop";
  version: string;
  commit?: string;
  kernel?: string;
  mode?: Mode;
  policy_sha256?: string | null;
  attach?: Record<string, string>;
  events?: Record<string, number>;
  lost?: Record<string, number>;
  duration_s?: number;
  log_sha256?: string;
  complete?: boolean;
  /** stop: false when the log on disk was not what the agent wrote (truncated or edited). */
  log_intact?: boolean;
  reason?: string;
}
export interface TamperEvent extends EventBase {
  kind: "tamper";
  what: string;
  detail?: string;
}

export type TraceEvent =
  | ExecEvent
  | ExitEvent
  | ConnectEvent
  | FileEvent
  | DnsEvent
  | AgentEvent
  | TamperEvent;

export type Verdict = "allow" | "deny" | "audit";
export type Mode = "observe" | "learn" | "enforce";

// ---- predicate (https://dpndncy.io/agent/runtime-trace/v1) ----

export interface Destination {
  addr: string;
  port: number;
  proto: "tcp" | "udp" | "other";
  family: "inet" | "inet6";
  /** Names whose DNS answers (anywhere in this log) contained addr, sorted. */
  hostnames: string[];
  /** Strictest verdict seen: deny > audit > allow; null when the agent gave none (observe). */
  verdict: Verdict | null;
  verdicts: Partial<Record<Verdict, number>>;
  count: number;
  /** Connects that returned a negative errno. */
  failed: number;
  /** CI steps that made the connection, sorted; null step is reported as "(unknown)". */
  steps: string[];
  rules: string[];
}

export interface ExecSummaryEntry {
  /** The exec'd filename as logged, in clear. */
  binary: string;
  /** Lowercase hex SHA-256 of the UTF-8 bytes of argv[1] exactly as logged (no terminator); null when argv has no [1]. */
  arg1_sha256: string | null;
  count: number;
  steps: string[];
}

export interface DnsName {
  name: string;
  count: number;
  /** Lookups whose rcode was non-zero (NXDOMAIN and friends: a DNS tunnel shows up here). */
  failed: number;
  steps: string[];
}

export interface SensitiveFile {
  path: string;
  rule: string;
  count: number;
  comms: string[];
  steps: string[];
}

export interface LineProblem {
  line: number;
  reason: string;
}

export interface SeqGap {
  line: number;
  expected: number;
  got: number;
}

export type IntegrityProblem =
  | "NO_START_RECORD"
  | "NO_STOP_RECORD"
  | "STOP_INCOMPLETE"
  | "LOG_SHA256_MISMATCH"
  | "LINES_AFTER_STOP"
  | "MULTIPLE_STOP_RECORDS"
  | "SEQ_GAP"
  | "CORRUPT_LINES"
  | "TRUNCATED_LAST_LINE"
  | "EVENTS_LOST"
  | "TAMPER_EVENTS"
  | "LOG_MODIFIED";

export interface Integrity {
  /** Stop record present with complete:true. */
  alive_to_end: boolean;
  /** log_sha256 matched, no seq gaps, nothing after stop, no corrupt lines, no tamper events, log_intact not false. */
  untampered: boolean;
  /** alive_to_end && untampered. */
  stopped_cleanly: boolean;
  start_record: boolean;
  stop_record: boolean;
  /** The stop record's `complete`: the agent ran to the end (false: killed, recovered by stop; null: no stop record). */
  complete: boolean | null;
  stop_reason: string | null;
  /** log_sha256 claimed by the stop record. */
  stop_log_sha256: string | null;
  /** SHA-256 we computed over every byte before the stop line. */
  computed_sha256_before_stop: string | null;
  log_sha256_match: boolean | null;
  lines_after_stop: number;
  seq_gaps: number;
  first_seq_gaps: SeqGap[];
  tamper_events: { what: string; detail: string | null; ts: string }[];
  problems: IntegrityProblem[];
}

export interface LineStats {
  total: number;
  valid: number;
  /** Not UTF-8, not JSON, empty, or over the line-length bound. */
  corrupt: number;
  /** JSON, but not an event per schema/event.v1.json. */
  invalid: number;
  /** Final line with no terminating newline (counted once, whether or not it parsed). */
  truncated: number;
  first_problems: LineProblem[];
}

export interface Limits {
  destinations: number;
  execs: number;
  dns_names: number;
  files: number;
  hostnames_per_addr: number;
  steps_per_entry: number;
}

export interface Predicate {
  /** Version of this predicate's own schema, so consumers can evolve. */
  schema: "https://dpndncy.io/schema/predicate.v1.json";
  log: { name: string; sha256: string; bytes: number };
  ci: CiIdentity | null;
  agent: {
    version: string | null;
    commit: string | null;
    kernel: string | null;
    attach: Record<string, string>;
    started: string | null;
    stopped: string | null;
    duration_s: number | null;
  };
  policy: { sha256: string | null; mode: Mode | null };
  lines: LineStats;
  counts: Partial<Record<EventKind, number>>;
  lost: Record<string, number>;
  egress: Destination[];
  exec: ExecSummaryEntry[];
  dns: DnsName[];
  files: SensitiveFile[];
  /** Entries dropped per collection because a bound in Limits was reached (memory stays bounded). */
  overflow: Partial<Record<keyof Limits, number>>;
  integrity: Integrity;
}
