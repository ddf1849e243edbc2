// The per-line state machine of the summarizer: line statistics, the first problems, seq
// continuity, the stop record's position and digest, and the event fold (Accumulator).
import { isUtf8 } from "node:buffer";
import { Accumulator, type FoldEvent, foldView } from "./accumulate.js";
import { fastParse } from "./fastparse.js";
import type { LineInfo } from "./lines.js";
import type { Limits, LineStats, SeqGap } from "./types.js";
import { validate } from "./validate.js";

export const MAX_PROBLEMS_LISTED = 10;

/** Why a line is not an event: corrupt (not UTF-8, not JSON, empty, too long) or invalid (schema). */
export class Rejected {
  readonly kind: "corrupt" | "invalid";
  readonly reason: string;
  constructor(kind: "corrupt" | "invalid", reason: string) {
    this.kind = kind;
    this.reason = reason;
  }
}

const EMPTY_LINE = new Rejected("corrupt", "empty line");

/**
 * Pure: one line (decoded `text`, or raw `bytes`; see LineSink) to an event or the reason it is
 * not one. `fast`: try fastparse.ts first; false gives the reference path alone (JSON.parse,
 * then the schema), which the fast path must agree with (test/unit/trace-fastparse.test.ts).
 */
export function parseLine(
  text: string | null,
  bytes: Buffer | null,
  info: LineInfo,
  maxLineBytes: number,
  fast = true,
): FoldEvent | Rejected {
  if (info.oversize) return new Rejected("corrupt", `line longer than ${maxLineBytes} bytes`);
  if (text === null) {
    if (bytes === null || bytes.length === 0) return EMPTY_LINE;
    // JSON.parse would silently turn invalid UTF-8 into U+FFFD; the log must not be "repaired".
    if (!isUtf8(bytes)) return new Rejected("corrupt", "not valid UTF-8");
    text = bytes.toString("utf8");
  } else if (text.length === 0) {
    return EMPTY_LINE;
  }
  if (fast) {
    const e = fastParse(text);
    if (e !== undefined) return e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return new Rejected("corrupt", `not JSON: ${(e as Error).message}`);
  }
  const v = validate(value);
  return v.ok ? foldView(v.event) : new Rejected("invalid", v.reason);
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
  readonly seq = new SeqTracker();
  stopLine = 0;
  digestBeforeStop: string | null = null;
  linesAfterStop = 0;
  private readonly maxLineBytes: number;

  private readonly fast: boolean;

  constructor(limits: Limits, maxLineBytes: number, fast = true) {
    this.acc = new Accumulator(limits);
    this.maxLineBytes = maxLineBytes;
    this.fast = fast;
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
    const parsed = parseLine(text, bytes, info, this.maxLineBytes, this.fast);
    if (parsed instanceof Rejected) {
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
    const e = parsed;
    if (e.seq !== undefined) this.seq.see(info.number, e.seq);
    if (e.kind === "agent" && e.event === "stop" && this.stopLine === 0) {
      // The stop record's log_sha256 covers every byte before its own line: tamper evidence.
      this.stopLine = info.number;
      this.digestBeforeStop = prefixDigest();
    }
    this.acc.add(e);
  }
}

/**
 * `seq` is the line number from 0. We expect it to advance exactly with the line count, also
 * across lines we could not parse, and resynchronise after a gap so one removal is one gap.
 */
export class SeqTracker {
  gaps = 0;
  readonly first: SeqGap[] = [];
  // The last line seen (0: none yet) and its seq: two numbers, not an object per line.
  private lastLine = 0;
  private lastSeq = 0;

  see(line: number, seq: number): void {
    const expected = this.lastLine > 0 ? this.lastSeq + (line - this.lastLine) : line - 1;
    if (seq !== expected) {
      this.gaps += 1;
      if (this.first.length < MAX_PROBLEMS_LISTED) this.first.push({ line, expected, got: seq });
    }
    this.lastLine = line;
    this.lastSeq = seq;
  }
}
