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
import { isAscii } from "node:buffer";
import { open } from "node:fs/promises";
import { type ByteDigest, threadDigest } from "./digest.js";

export interface LineInfo {
  /** 1-based line number. */
  number: number;
  /** The line ended with "\n" (false only for a final unterminated line). */
  terminated: boolean;
  /** The line was longer than maxLineBytes; `bytes` is empty. */
  oversize: boolean;
}

export interface LineSink {
  /**
   * One line without its "\n". Lines of an all-ASCII run of a chunk (the common case) arrive
   * decoded as `text` (then `bytes` is null): the run is checked and decoded in one call each,
   * which is far cheaper than a Buffer view plus a decode per line. Other lines arrive as
   * `bytes` (and `text` is null), undecoded, so the sink can reject invalid UTF-8 itself.
   * `bytes` and `info` are only valid during the call (they may view a reused chunk / be reused).
   */
  line(text: string | null, bytes: Buffer | null, info: LineInfo, prefixDigest: () => string): void;
}

export interface ReadResult {
  sha256: string;
  bytes: number;
  lines: number;
}

export const DEFAULT_MAX_LINE_BYTES = 1 << 20;

export async function readLines(
  stream: AsyncIterable<Buffer | string>,
  sink: LineSink,
  maxLineBytes = DEFAULT_MAX_LINE_BYTES,
  hash: ByteDigest = threadDigest(),
): Promise<ReadResult> {
  let total = 0;
  // One LineInfo for every line: an allocation per line is measurable at millions of lines.
  const info: LineInfo = { number: 0, terminated: true, oversize: false };
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
    return hash.digest();
  };
  const emit = (
    text: string | null,
    bytes: Buffer | null,
    terminated: boolean,
    oversize: boolean,
  ): void => {
    info.number += 1;
    info.terminated = terminated;
    info.oversize = oversize;
    sink.line(text, bytes, info, prefixDigest);
  };
  const emitBytes = (bytes: Buffer, terminated: boolean): void => {
    if (bytes.length > maxLineBytes) emit(null, EMPTY, terminated, true);
    else emit(null, bytes, terminated, false);
  };
  const hashPending = (): void => {
    for (const p of pending) hash.update(p);
    pending = [];
    pendingLen = 0;
  };
  const onLine = (text: string | null, bytes: Buffer, oversize: boolean, at: number): void => {
    lineStart = at;
    emit(text, text === null ? bytes : null, true, oversize);
  };
  for await (const chunk of stream) {
    cur = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    hashedUpTo = 0;
    total += cur.length;
    let start = 0;
    if (pendingLen > 0 || discarding) {
      // Finish the line carried over from earlier chunks.
      const nl = cur.indexOf(10);
      if (nl !== -1) {
        // Its earlier pieces are unhashed and precede cur: the prefix is the hash as it is.
        lineStart = 0;
        if (discarding) {
          // End of an oversize line; it cannot be a stop record, the digest is not asked for.
          emit(null, EMPTY, true, true);
          discarding = false;
        } else {
          emitBytes(Buffer.concat([...pending, cur.subarray(0, nl)]), true);
          hashPending();
        }
        start = nl + 1;
      } else {
        start = cur.length;
        if (discarding) {
          catchUp(cur.length);
        } else if (pendingLen + cur.length > maxLineBytes) {
          hashPending();
          catchUp(cur.length);
          discarding = true;
        } else {
          pending.push(Buffer.from(cur));
          pendingLen += cur.length;
          hashedUpTo = cur.length;
        }
      }
    }
    const last = start < cur.length ? cur.lastIndexOf(10) : -1;
    if (last >= start) {
      forEachLine(cur, start, last, maxLineBytes, onLine);
      start = last + 1;
    }
    if (start < cur.length) {
      // The start of a line that continues in the next chunk.
      catchUp(start);
      const rest = cur.subarray(start);
      if (rest.length > maxLineBytes) {
        catchUp(cur.length);
        discarding = true;
      } else {
        // Copy: the stream may reuse the chunk's memory. Hashed when the line completes.
        pending.push(Buffer.from(rest));
        pendingLen += rest.length;
        hashedUpTo = cur.length;
      }
    }
    catchUp(cur.length);
  }
  // A final line without "\n": still part of the log, still hashed.
  cur = EMPTY;
  hashedUpTo = 0;
  lineStart = 0;
  if (discarding) {
    emit(null, EMPTY, false, true);
  } else if (pendingLen > 0) {
    emitBytes(Buffer.concat(pending), false);
    hashPending();
  }
  return { sha256: hash.digest(), bytes: total, lines: info.number };
}

const EMPTY = Buffer.alloc(0);

/**
 * A file's bytes in chunks of `size`, read into two buffers in turn: the next read is under
 * way while the caller works on a chunk (a read stream reads only when asked, and the
 * summarizer sat idle for a fifth of its reads), and no buffer is allocated per chunk. A chunk
 * is valid until the next one is asked for (readLines copies what it keeps). Still async: the
 * daemon summarizes while it serves.
 */
export async function* fileChunks(path: string, size: number): AsyncGenerator<Buffer> {
  const fh = await open(path, "r");
  const bufs = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
  let which = 0;
  let next = fh.read(bufs[0] as Buffer, 0, size, null);
  try {
    for (;;) {
      const { bytesRead, buffer } = await next;
      if (bytesRead === 0) return;
      which ^= 1;
      next = fh.read(bufs[which] as Buffer, 0, size, null);
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    // A read may still be under way when the caller stops early: let it end before closing.
    await next.catch(() => undefined);
    await fh.close();
  }
}

/**
 * Calls `each` for the complete lines in buf[from, to], where buf[to] is the "\n" ending the
 * last of them, with each line's start offset. An all-ASCII run (the common case) is checked
 * and decoded in one call each and its lines arrive as `text`; otherwise every line arrives as
 * a `bytes` view. An oversize line arrives with `oversize` set and empty bytes.
 */
function forEachLine(
  buf: Buffer,
  from: number,
  to: number,
  maxLineBytes: number,
  each: (text: string | null, bytes: Buffer, oversize: boolean, start: number) => void,
): void {
  // Runs of at most ~64 KiB of whole lines: a bigger decoded string lands in V8's large-object
  // space, which only a full GC frees; at a few hundred MB/s that garbage piles up as RSS.
  let start = from;
  while (start <= to) {
    let end = start + RUN_BYTES >= to ? to : buf.lastIndexOf(10, start + RUN_BYTES);
    if (end < start) end = buf.indexOf(10, start); // one line longer than a run
    eachLineOfRun(buf, start, end, maxLineBytes, each);
    start = end + 1;
  }
}

const RUN_BYTES = 64 * 1024;

function eachLineOfRun(
  buf: Buffer,
  from: number,
  to: number,
  maxLineBytes: number,
  each: (text: string | null, bytes: Buffer, oversize: boolean, start: number) => void,
): void {
  const run = buf.subarray(from, to + 1);
  if (isAscii(run)) {
    // ASCII: string index === byte offset, and latin1 decoding is a plain copy.
    const text = run.toString("latin1");
    let p = 0;
    while (p < text.length) {
      const nl = text.indexOf("\n", p);
      if (nl - p > maxLineBytes) each(null, EMPTY, true, from + p);
      else each(text.slice(p, nl), EMPTY, false, from + p);
      p = nl + 1;
    }
    return;
  }
  let start = from;
  while (start <= to) {
    const nl = buf.indexOf(10, start);
    if (nl - start > maxLineBytes) each(null, EMPTY, true, start);
    else each(null, buf.subarray(start, nl), false, start);
    start = nl + 1;
  }
}
