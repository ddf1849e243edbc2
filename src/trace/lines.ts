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
  const prefixDigest = (): string => hash.copy().digest("hex");
  let total = 0;
  let lineNo = 0;
  // Pieces of a line that spans chunks, not yet hashed.
  let pending: Buffer[] = [];
  let pendingLen = 0;
  // Set while skipping the rest of an oversize line; its bytes are hashed as they pass.
  let discarding = false;

  const emit = (bytes: Buffer, terminated: boolean, oversize: boolean): void => {
    lineNo += 1;
    sink.line(bytes, { number: lineNo, terminated, oversize }, prefixDigest);
  };

  for await (const chunk of stream) {
    const buf: Buffer = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    total += buf.length;
    let start = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(10, start);
      if (nl === -1) {
        const rest = buf.subarray(start);
        if (discarding) {
          hash.update(rest);
        } else if (pendingLen + rest.length > maxLineBytes) {
          for (const p of pending) hash.update(p);
          hash.update(rest);
          pending = [];
          pendingLen = 0;
          discarding = true;
        } else {
          // Copy: the stream may reuse the chunk's memory.
          pending.push(Buffer.from(rest));
          pendingLen += rest.length;
        }
        break;
      }
      const piece = buf.subarray(start, nl);
      if (discarding) {
        // The oversize line ends here; it was hashed as it went, the callback sees it before
        // its last bytes enter the hash (it cannot be a stop record anyway).
        emit(Buffer.alloc(0), true, true);
        hash.update(buf.subarray(start, nl + 1));
        discarding = false;
      } else if (pendingLen > 0) {
        const line = Buffer.concat([...pending, piece]);
        pending = [];
        pendingLen = 0;
        if (line.length > maxLineBytes) {
          emit(Buffer.alloc(0), true, true);
        } else {
          emit(line, true, false);
        }
        hash.update(line);
        hash.update(NEWLINE);
      } else if (piece.length > maxLineBytes) {
        emit(Buffer.alloc(0), true, true);
        hash.update(buf.subarray(start, nl + 1));
      } else {
        emit(piece, true, false);
        hash.update(buf.subarray(start, nl + 1));
      }
      start = nl + 1;
    }
  }
  // A final line without "\n": still part of the log, still hashed.
  if (discarding) {
    emit(Buffer.alloc(0), false, true);
  } else if (pendingLen > 0) {
    const line = Buffer.concat(pending);
    emit(line, false, false);
    hash.update(line);
  }
  return { sha256: hash.digest("hex"), bytes: total, lines: lineNo };
}

const NEWLINE = Buffer.from([10]);
