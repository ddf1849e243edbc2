// Streams an NDJSON agent log into the runtime-trace predicate (DESIGN §4) in one pass:
// hash, validate, fold. Never holds the log; a bad line is counted, never thrown.
import { stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { basename } from "node:path";
import { DEFAULT_LIMITS } from "./accumulate.js";
import { type ByteDigest, threadDigest, workerDigest } from "./digest.js";
import { TraceFold } from "./fold.js";
import { DEFAULT_MAX_LINE_BYTES, fileChunks, readLines } from "./lines.js";
import {
  type AgentEvent,
  type CiIdentity,
  EVENT_KINDS,
  type Integrity,
  type IntegrityProblem,
  type Limits,
  type LineStats,
  type Predicate,
  type SeqGap,
} from "./types.js";

export interface SummarizeOptions {
  /** Job identity from the platform detector; null when not in CI. */
  ci?: CiIdentity | null;
  /** Subject name of the log; defaults to the file's basename. */
  logName?: string;
  limits?: Partial<Limits>;
  maxLineBytes?: number;
  /** false: only the reference parse (JSON.parse + schema), for comparing the fast path with. */
  fastPath?: boolean;
  /**
   * Hash the log in a worker thread (digest.ts). Default: wantWorker(); summarizeStream
   * always hashes in this thread. The predicate is the same either way.
   */
  hashWorker?: boolean;
}

/** From this size on summarizeFile may hash in a worker thread (its start-up is ~30 ms). */
export const WORKER_MIN_BYTES = 32 * 1024 * 1024;

/**
 * A large file, and a second CPU. Measured on the shared 2-vCPU VM (bench/summarize.ts, both
 * ways interleaved): the parser's thread needs 5-15 % less CPU; in wall time it was a wash
 * with one CPU busy elsewhere and 25 % faster with both CPUs contended (the scheduler shares
 * CPU per thread). The predicate is the same either way.
 */
export function wantWorker(bytes: number, cpus = availableParallelism()): boolean {
  return bytes >= WORKER_MIN_BYTES && cpus >= 2;
}

export async function summarizeFile(path: string, opts: SummarizeOptions = {}): Promise<Predicate> {
  const inWorker = opts.hashWorker ?? wantWorker((await stat(path)).size);
  const digest = inWorker ? (tryWorkerDigest() ?? threadDigest()) : threadDigest();
  try {
    // 256 KiB reads: large enough that hashing and splitting work on long spans, small enough
    // that the text decoded from them stays out of V8's large-object space (1 MiB read-stream
    // chunks cost ~70 MB more peak RSS on the 2M-event bench for no speed gain). Two buffers
    // read in turn (fileChunks): 12-15 % faster than a read stream, which left us idle.
    return await summarizeWith(
      fileChunks(path, 256 * 1024),
      { ...opts, logName: opts.logName ?? basename(path) },
      digest,
    );
  } finally {
    await digest.close();
  }
}

/**
 * A worker digest, or undefined when no thread can be started here (the same digest is then
 * computed in this thread: slower, never skipped). A worker that fails later is an error.
 */
function tryWorkerDigest(): ByteDigest | undefined {
  try {
    return workerDigest();
  } catch {
    return undefined;
  }
}

export async function summarizeStream(
  stream: AsyncIterable<Buffer | string>,
  opts: SummarizeOptions & { logName: string },
): Promise<Predicate> {
  return summarizeWith(stream, opts, threadDigest());
}

async function summarizeWith(
  stream: AsyncIterable<Buffer | string>,
  opts: SummarizeOptions & { logName: string },
  digest: ByteDigest,
): Promise<Predicate> {
  const maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const fold = new TraceFold(
    { ...DEFAULT_LIMITS, ...opts.limits },
    maxLineBytes,
    opts.fastPath ?? true,
  );
  const read = await readLines(stream, fold, maxLineBytes, digest);
  return predicate(fold, read, opts);
}

/** Pure: the predicate of a log, from its fold and the reader's digest and size. */
function predicate(
  fold: TraceFold,
  read: { sha256: string; bytes: number },
  opts: SummarizeOptions & { logName: string },
): Predicate {
  const acc = fold.acc;
  const start = acc.start;
  const stop = acc.stop;
  return {
    schema: "https://dpndncy.io/schema/predicate.v1.json",
    log: { name: opts.logName, sha256: read.sha256, bytes: read.bytes },
    ci: opts.ci ?? null,
    agent: {
      version: start?.version ?? stop?.version ?? null,
      commit: start?.commit ?? null,
      kernel: start?.kernel ?? null,
      attach: start?.attach ?? {},
      started: start?.ts ?? null,
      stopped: stop?.ts ?? null,
      duration_s: stop?.duration_s ?? null,
    },
    policy: { sha256: start?.policy_sha256 ?? null, mode: start?.mode ?? null },
    lines: fold.lines,
    counts: orderedCounts(acc.counts),
    lost: stop?.lost ?? {},
    egress: acc.egress(),
    exec: acc.exec(),
    dns: acc.dns(),
    files: acc.sensitiveFiles(),
    overflow: acc.overflow,
    integrity: integrity({
      start,
      stop,
      stopRecords: acc.stopRecords,
      digestBeforeStop: fold.digestBeforeStop,
      linesAfterStop: fold.linesAfterStop,
      seq: fold.seq,
      lines: fold.lines,
      tamper: acc.tamper,
      tamperCount: acc.tamperCount,
    }),
  };
}

// Stable key order (the kinds' order in the schema) so equal logs give byte-equal predicates.
function orderedCounts(c: Predicate["counts"]): Predicate["counts"] {
  const out: Predicate["counts"] = {};
  for (const k of EVENT_KINDS) {
    const n = c[k];
    if (n !== undefined) out[k] = n;
  }
  return out;
}

interface IntegrityInput {
  start: AgentEvent | null;
  stop: AgentEvent | null;
  stopRecords: number;
  digestBeforeStop: string | null;
  linesAfterStop: number;
  seq: { gaps: number; first: SeqGap[] };
  lines: LineStats;
  tamper: Integrity["tamper_events"];
  tamperCount: number;
}

/** Pure: decides what the trace says about the agent's survival and the log's integrity. */
export function integrity(i: IntegrityInput): Integrity {
  const problems: IntegrityProblem[] = [];
  const claimed = i.stop?.log_sha256 ?? null;
  const match = i.stop ? claimed !== null && claimed === i.digestBeforeStop : null;
  if (!i.start) problems.push("NO_START_RECORD");
  if (!i.stop) problems.push("NO_STOP_RECORD");
  if (i.stop && i.stop.complete !== true) problems.push("STOP_INCOMPLETE");
  if (match === false) problems.push("LOG_SHA256_MISMATCH");
  if (i.stopRecords > 1) problems.push("MULTIPLE_STOP_RECORDS");
  if (i.linesAfterStop > 0) problems.push("LINES_AFTER_STOP");
  if (i.seq.gaps > 0) problems.push("SEQ_GAP");
  if (i.lines.corrupt + i.lines.invalid > 0) problems.push("CORRUPT_LINES");
  if (i.lines.truncated > 0) problems.push("TRUNCATED_LAST_LINE");
  const lost = Object.values(i.stop?.lost ?? {}).reduce((a, b) => a + b, 0);
  if (lost > 0) problems.push("EVENTS_LOST");
  if (i.tamperCount > 0) problems.push("TAMPER_EVENTS");
  if (i.stop && i.stop.log_intact === false) problems.push("LOG_MODIFIED");

  const aliveToEnd = i.stop !== null && i.stop.complete === true;
  // Lost events are a visibility gap reported on their own; they are not evidence of tampering.
  const tamperSigns: IntegrityProblem[] = [
    "NO_STOP_RECORD",
    "LOG_SHA256_MISMATCH",
    "MULTIPLE_STOP_RECORDS",
    "LINES_AFTER_STOP",
    "SEQ_GAP",
    "CORRUPT_LINES",
    "TRUNCATED_LAST_LINE",
    "TAMPER_EVENTS",
    "LOG_MODIFIED",
  ];
  const untampered = !problems.some((p) => tamperSigns.includes(p));
  return {
    alive_to_end: aliveToEnd,
    untampered,
    stopped_cleanly: aliveToEnd && untampered,
    start_record: i.start !== null,
    stop_record: i.stop !== null,
    complete: i.stop ? (i.stop.complete ?? null) : null,
    stop_reason: i.stop?.reason ?? null,
    stop_log_sha256: claimed,
    computed_sha256_before_stop: i.digestBeforeStop,
    log_sha256_match: match,
    lines_after_stop: i.linesAfterStop,
    seq_gaps: i.seq.gaps,
    first_seq_gaps: i.seq.first,
    tamper_events: i.tamper,
    problems,
  };
}
