// The per-line state machine of the summarizer: line statistics, the first problems, seq
// continuity, the stop record's position and digest, and the event fold (Accumulator).
import { isUtf8 } from "node:buffer";
import { Accumulator } from "./accumulate.js";
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
  // The valid case is returned as is: one allocation per line fewer.
  return v.ok ? v : { ok: false, kind: "invalid", reason: v.reason };
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

  constructor(limits: Limits, maxLineBytes: number) {
    this.acc = new Accumulator(limits);
    this.maxLineBytes = maxLineBytes;
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
}

/**
 * `seq` is the line number from 0. We expect it to advance exactly with the line count, also
 * across lines we could not parse, and resynchronise after a gap so one removal is one gap.
 */
export class SeqTracker {
  gaps = 0;
  readonly first: SeqGap[] = [];
  private last: { line: number; seq: number } | null = null;

  see(line: number, seq: number): void {
    const expected = this.last ? this.last.seq + (line - this.last.line) : line - 1;
    if (seq !== expected) {
      this.gaps += 1;
      if (this.first.length < MAX_PROBLEMS_LISTED) this.first.push({ line, expected, got: seq });
    }
    this.last = { line, seq };
  }
}
