// Byte-exact line reader with an in-pass SHA-256.
//
// Why not node:readline: it decodes to strings and strips "\n" / "\r\n", so neither the exact
// on-disk bytes (invalid UTF-8, CR) nor the offset where a line starts survive. We need both:
// the log digest must be over the bytes exactly as on disk, and the stop record's log_sha256
// must be checked against the hash of every byte *before* its line. So this is readline's job
// done on Buffers: chunks are split on 0x0A, each line is handed to a synchronous callback
// *before* its bytes enter the hash, so the callback can ask for the digest of the prefix.
// Memory is bounded by the stream's chunk size plus one line (lines over maxLineBytes are
// hashed and discarded, and reported as oversize).
import { createHash, type Hash } from "node:crypto";
import type { Readable } from "node:stream";

export interface LineInfo {
  /** 1-based line number. */
  number: number;
  /** The line ended with "\n" (false only for a final unterminated line). */
  terminated: boolean;
  /** The line was longer than maxLineBytes; `bytes` is empty. */
  oversize: boolean;
}

export interface LineSink {
  /** `bytes` excludes the "\n" and is only valid during the call (it may view a reused chunk). */
  line(bytes: Buffer, info: LineInfo, prefixDigest: () => string): void;
}

export interface ReadResult {
  sha256: string;
  bytes: number;
  lines: number;
}

export const DEFAULT_MAX_LINE_BYTES = 1 << 20;

export async function readLines(
  stream: Readable,
  sink: LineSink,
  maxLineBytes = DEFAULT_MAX_LINE_BYTES,
): Promise<ReadResult> {
  const hash: Hash = createHash("sha256");
  let total = 0;
  let lineNo = 0;
  // Bytes are hashed lazily, a chunk span at a time (per-line updates cost a third of the
  // hashing time): `cur[0, hashedUpTo)` is in the hash; pieces of a line spanning chunks wait
  // in `pending`, unhashed, until the line is complete.
  let cur: Buffer = Buffer.alloc(0);
  let hashedUpTo = 0;
  let lineStart = 0;
  let pending: Buffer[] = [];
  let pendingLen = 0;
  // Set while skipping the rest of an oversize line; its bytes are hashed as they pass.
  let discarding = false;

  const catchUp = (to: number): void => {
    if (to > hashedUpTo) {
      hash.update(cur.subarray(hashedUpTo, to));
      hashedUpTo = to;
    }
  };
  // Digest of every byte before the current line.
  const prefixDigest = (): string => {
    catchUp(lineStart);
    return hash.copy().digest("hex");
  };
  const emit = (bytes: Buffer, terminated: boolean, oversize: boolean): void => {
    lineNo += 1;
    sink.line(bytes, { number: lineNo, terminated, oversize }, prefixDigest);
  };
  const hashPending = (): void => {
    for (const p of pending) hash.update(p);
    pending = [];
    pendingLen = 0;
  };

  for await (const chunk of stream) {
    cur = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    hashedUpTo = 0;
    total += cur.length;
    let start = 0;
    while (start < cur.length) {
      const nl = cur.indexOf(10, start);
      if (nl === -1) {
        catchUp(start);
        const rest = cur.subarray(start);
        if (discarding) {
          catchUp(cur.length);
        } else if (pendingLen + rest.length > maxLineBytes) {
          hashPending();
          catchUp(cur.length);
          discarding = true;
        } else {
          // Copy: the stream may reuse the chunk's memory. Hashed when the line completes.
          pending.push(Buffer.from(rest));
          pendingLen += rest.length;
          hashedUpTo = cur.length;
        }
        break;
      }
      const piece = cur.subarray(start, nl);
      // The line's earlier pieces (if any) are unhashed and precede cur: prefix = hash as is.
      lineStart = start;
      if (discarding) {
        // End of an oversize line; it cannot be a stop record, the digest is not asked for.
        emit(EMPTY, true, true);
        discarding = false;
      } else if (pendingLen > 0) {
        const line = Buffer.concat([...pending, piece]);
        emit(line.length > maxLineBytes ? EMPTY : line, true, line.length > maxLineBytes);
        hashPending();
      } else if (piece.length > maxLineBytes) {
        emit(EMPTY, true, true);
      } else {
        emit(piece, true, false);
      }
      start = nl + 1;
    }
    catchUp(start);
  }
  // A final line without "\n": still part of the log, still hashed.
  cur = EMPTY;
  hashedUpTo = 0;
  lineStart = 0;
  if (discarding) {
    emit(EMPTY, false, true);
  } else if (pendingLen > 0) {
    const line = Buffer.concat(pending);
    emit(line, false, false);
    hashPending();
  }
  return { sha256: hash.digest("hex"), bytes: total, lines: lineNo };
}

const EMPTY = Buffer.alloc(0);
