// The per-line state machine of the summarizer: line statistics, the first problems, seq
// continuity, the stop record's position, and the event fold (Accumulator). The in-thread path
// feeds it every line of the log; the parallel path (parallel.ts) gives each batch of lines its
// own fold, numbered from the batch's first line, and merges the batch states here in log order.
import { isUtf8 } from "node:buffer";
import { Accumulator, type AccumulatorState } from "./accumulate.js";
import type { LineInfo } from "./lines.js";
import type { Limits, LineStats, SeqGap, TraceEvent } from "./types.js";
import { validate } from "./validate.js";

export const MAX_PROBLEMS_LISTED = 10;

type Parsed =
  | { ok: true; event: TraceEvent }
  | { ok: false; kind: "corrupt" | "invalid"; reason: string };

const EMPTY_LINE: Parsed = { ok: false, kind: "corrupt", reason: "empty line" };

/** Pure: one line (decoded `text`, or raw `bytes`; see LineSink) to an event or the reason it is not one. */
export function parseLine(
  text: string | null,
  bytes: Buffer | null,
  info: LineInfo,
  maxLineBytes: number,
): Parsed {
  if (info.oversize) {
    return { ok: false, kind: "corrupt", reason: `line longer than ${maxLineBytes} bytes` };
  }
  if (text === null) {
    if (bytes === null || bytes.length === 0) return EMPTY_LINE;
    // JSON.parse would silently turn invalid UTF-8 into U+FFFD; the log must not be "repaired".
    if (!isUtf8(bytes)) return { ok: false, kind: "corrupt", reason: "not valid UTF-8" };
    text = bytes.toString("utf8");
  } else if (text.length === 0) {
    return EMPTY_LINE;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, kind: "corrupt", reason: `not JSON: ${(e as Error).message}` };
  }
  const v = validate(value);
  return v.ok ? { ok: true, event: v.event } : { ok: false, kind: "invalid", reason: v.reason };
}

/** A batch's fold, as posted by a worker (structured-clone friendly: plain data, Maps, Sets). */
export interface FoldState {
  lines: LineStats;
  seq: SeqState;
  /** Line of the first stop record (0 if none), and the byte offset where that line starts. */
  stopLine: number;
  stopOffset: number;
  linesAfterStop: number;
  acc: AccumulatorState;
}

export class TraceFold {
  readonly acc: Accumulator;
  readonly lines: LineStats = {
    total: 0,
    valid: 0,
    corrupt: 0,
    invalid: 0,
    truncated: 0,
    first_problems: [],
  };
  readonly seq: SeqTracker;
  stopLine = 0;
  /** Byte offset of the stop line, as told by the caller's prefixDigest (batch folds only). */
  stopOffset = -1;
  digestBeforeStop: string | null = null;
  linesAfterStop = 0;
  private readonly maxLineBytes: number;

  /** `batch`: lines are numbered within a batch whose predecessors are folded elsewhere. */
  constructor(limits: Limits, maxLineBytes: number, batch = false) {
    this.acc = new Accumulator(limits);
    this.maxLineBytes = maxLineBytes;
    this.seq = new SeqTracker(batch);
  }

  private problem(line: number, reason: string): void {
    if (this.lines.first_problems.length < MAX_PROBLEMS_LISTED) {
      this.lines.first_problems.push({ line, reason });
    }
  }

  line(
    text: string | null,
    bytes: Buffer | null,
    info: LineInfo,
    prefixDigest: () => string,
  ): void {
    const lines = this.lines;
    lines.total += 1;
    if (this.stopLine > 0) this.linesAfterStop += 1;
    if (!info.terminated) lines.truncated += 1;
    const parsed = parseLine(text, bytes, info, this.maxLineBytes);
    if (!parsed.ok) {
      // A final line cut mid-write is reported as truncated, not also as corrupt.
      if (info.terminated || parsed.kind === "invalid") lines[parsed.kind] += 1;
      this.problem(
        info.number,
        info.terminated ? parsed.reason : `truncated (no final newline): ${parsed.reason}`,
      );
      return;
    }
    if (!info.terminated) this.problem(info.number, "truncated (no final newline)");
    lines.valid += 1;
    const e = parsed.event;
    if (e.seq !== undefined) this.seq.see(info.number, e.seq);
    if (e.kind === "agent" && e.event === "stop" && this.stopLine === 0) {
      // The stop record's log_sha256 covers every byte before its own line: tamper evidence.
      this.stopLine = info.number;
      this.digestBeforeStop = prefixDigest();
    }
    this.acc.add(e);
  }

  state(): FoldState {
    return {
      lines: this.lines,
      seq: this.seq.state(),
      stopLine: this.stopLine,
      stopOffset: this.stopOffset,
      linesAfterStop: this.linesAfterStop,
      acc: this.acc.state(),
    };
  }

  /**
   * Appends the fold of the batch that follows everything merged so far. `lineBase` is the
   * number of lines before the batch; `digestAt(offset)` gives the log's SHA-256 up to a byte
   * offset within the batch. Returns false, having merged only part, when a capped collection
   * would overflow (see Accumulator.merge): the caller must then start over in-thread.
   */
  merge(b: FoldState, lineBase: number, digestAt: (offset: number) => string): boolean {
    const lines = this.lines;
    lines.total += b.lines.total;
    lines.valid += b.lines.valid;
    lines.corrupt += b.lines.corrupt;
    lines.invalid += b.lines.invalid;
    lines.truncated += b.lines.truncated;
    for (const p of b.lines.first_problems) this.problem(p.line + lineBase, p.reason);
    this.seq.merge(b.seq, lineBase);
    if (this.stopLine > 0) {
      this.linesAfterStop += b.lines.total;
    } else if (b.stopLine > 0) {
      this.stopLine = b.stopLine + lineBase;
      this.digestBeforeStop = digestAt(b.stopOffset);
      this.linesAfterStop = b.linesAfterStop;
    }
    return this.acc.merge(b.acc);
  }
}

interface SeqState {
  gaps: number;
  first: SeqGap[];
  /** The first and the last (line, seq) seen; in a batch the first is left for merge to check. */
  head: { line: number; seq: number } | null;
  last: { line: number; seq: number } | null;
}

/**
 * `seq` is the line number from 0. We expect it to advance exactly with the line count, also
 * across lines we could not parse, and resynchronise after a gap so one removal is one gap.
 */
export class SeqTracker {
  gaps = 0;
  readonly first: SeqGap[] = [];
  private head: { line: number; seq: number } | null = null;
  private last: { line: number; seq: number } | null = null;
  /** In a batch the line before the first is unknown: its check is deferred to merge(). */
  private readonly deferFirst: boolean;

  constructor(deferFirst = false) {
    this.deferFirst = deferFirst;
  }

  see(line: number, seq: number): void {
    if (this.last === null && this.deferFirst) {
      this.head = { line, seq };
    } else {
      this.check(line, seq);
    }
    this.last = { line, seq };
  }

  private check(line: number, seq: number): void {
    const expected = this.last ? this.last.seq + (line - this.last.line) : line - 1;
    if (seq !== expected) {
      this.gaps += 1;
      if (this.first.length < MAX_PROBLEMS_LISTED) this.first.push({ line, expected, got: seq });
    }
  }

  state(): SeqState {
    return { gaps: this.gaps, first: this.first, head: this.head, last: this.last };
  }

  /** Continues with a batch's seq lines (numbered from lineBase + 1), in order. */
  merge(b: SeqState, lineBase: number): void {
    if (b.head === null || b.last === null) return;
    this.check(b.head.line + lineBase, b.head.seq);
    this.gaps += b.gaps;
    for (const g of b.first) {
      if (this.first.length < MAX_PROBLEMS_LISTED)
        this.first.push({ ...g, line: g.line + lineBase });
    }
    this.last = { line: b.last.line + lineBase, seq: b.last.seq };
  }
}
