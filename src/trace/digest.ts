// The log's SHA-256, computed in this thread or in a worker thread beside the line parser.
//
// Why a worker: hashing is a fifth of the summarizer's time on a large log and does not depend
// on parsing, so on a second CPU it costs the parser nothing. It is only worth its start-up
// (~30 ms, ~10 MB) on large logs; summarizeFile decides. The bytes go through a fixed ring of
// shared memory (no allocation per chunk, no message per chunk): the parser copies a span in
// and moves `head`, the worker hashes it and moves `tail`. A digest of the prefix (the stop
// record's check) is a request in the ring like the bytes, so it sees exactly the bytes before
// it. The parser blocks only when the ring is full or for a digest; a worker that fails or stops
// answering is an error, never a skipped hash.
import { createHash } from "node:crypto";
import { Worker } from "node:worker_threads";

export interface ByteDigest {
  /** Appends bytes; `b` may be reused by the caller as soon as this returns. */
  update(b: Uint8Array): void;
  /** Lowercase hex SHA-256 of every byte appended so far; updates may continue after it. */
  digest(): string;
  /** Releases the worker (if any); call once, also after an error. */
  close(): Promise<void>;
}

export function threadDigest(): ByteDigest {
  const hash = createHash("sha256");
  return {
    update: (b) => {
      hash.update(b);
    },
    digest: () => hash.copy().digest("hex"),
    close: async () => undefined,
  };
}

const SLOTS = 8;
const SLOT_BYTES = 256 * 1024;
// ctl (Int32): slots written by the parser, slots done by the worker, and the worker's state.
const HEAD = 0;
const TAIL = 1;
const FAILED = 2;
// A slot's length, or one of these requests instead of bytes.
const REQ_DIGEST = -1;
const REQ_END = -2;
const ERROR_BYTES = 1024;
/** How long the parser waits for the worker before calling it broken. */
export const WORKER_TIMEOUT_MS = 60_000;

// CommonJS: an eval'd worker is a script. Self-contained so that the bundles need no second file.
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const { ctl, lens, ring, out, err, slots, slotBytes } = workerData;
const hash = createHash("sha256");
try {
  for (let tail = 0; ; tail++) {
    while (Atomics.load(ctl, ${HEAD}) === tail) Atomics.wait(ctl, ${HEAD}, tail);
    const slot = tail % slots;
    const len = lens[slot];
    if (len >= 0) hash.update(ring.subarray(slot * slotBytes, slot * slotBytes + len));
    else out.set(Buffer.from(hash.copy().digest("hex"), "latin1"));
    Atomics.store(ctl, ${TAIL}, tail + 1);
    Atomics.notify(ctl, ${TAIL});
    if (len === ${REQ_END}) break;
  }
} catch (e) {
  err.set(Buffer.from(String(e && e.message || e).slice(0, ${ERROR_BYTES} - 1), "latin1"));
  Atomics.store(ctl, ${FAILED}, 1);
  Atomics.notify(ctl, ${TAIL});
}
`;

export function workerDigest(): ByteDigest {
  const ctl = new Int32Array(new SharedArrayBuffer(4 * 4));
  const lens = new Int32Array(new SharedArrayBuffer(4 * SLOTS));
  const ring = new Uint8Array(new SharedArrayBuffer(SLOTS * SLOT_BYTES));
  const out = new Uint8Array(new SharedArrayBuffer(64));
  const err = new Uint8Array(new SharedArrayBuffer(ERROR_BYTES));
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { ctl, lens, ring, out, err, slots: SLOTS, slotBytes: SLOT_BYTES },
    // A hashing loop needs almost no heap; keep the isolate small.
    resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2 },
    stdout: false,
    stderr: false,
  });
  worker.unref();
  // Errors arrive on this thread's event loop, which a wait blocks; the FAILED flag is what a
  // wait sees. A worker that dies before its try block is caught by the wait's timeout.
  let exitError: string | null = null;
  worker.on("error", (e) => {
    exitError = e.message;
  });
  let head = 0;
  let closed = false;

  const failed = (): Error => {
    const n = err.indexOf(0);
    const why = Buffer.from(err.subarray(0, n < 0 ? err.length : n)).toString("latin1");
    return new Error(`SHA-256 worker failed: ${why || exitError || "no reason given"}`);
  };
  // Blocks until the worker has done at least `n` slots.
  const waitDone = (n: number): void => {
    for (;;) {
      if (Atomics.load(ctl, FAILED) !== 0) throw failed();
      const tail = Atomics.load(ctl, TAIL);
      if (tail >= n) return;
      if (Atomics.wait(ctl, TAIL, tail, WORKER_TIMEOUT_MS) === "timed-out") {
        throw new Error(`SHA-256 worker did not answer for ${WORKER_TIMEOUT_MS / 1000} s`);
      }
    }
  };
  const post = (len: number): number => {
    lens[head % SLOTS] = len;
    head += 1;
    Atomics.store(ctl, HEAD, head);
    Atomics.notify(ctl, HEAD);
    return head;
  };
  const freeSlot = (): number => {
    if (closed) throw new Error("SHA-256 worker already closed");
    // A slot is free once the worker is done with the use SLOTS posts ago.
    waitDone(head - SLOTS + 1);
    return head % SLOTS;
  };
  return {
    update(b) {
      for (let at = 0; at < b.length; at += SLOT_BYTES) {
        const piece = b.subarray(at, Math.min(at + SLOT_BYTES, b.length));
        ring.set(piece, freeSlot() * SLOT_BYTES);
        post(piece.length);
      }
    },
    digest() {
      freeSlot();
      waitDone(post(REQ_DIGEST));
      return Buffer.from(out).toString("latin1");
    },
    async close() {
      if (closed) return;
      closed = true;
      if (Atomics.load(ctl, FAILED) === 0 && Atomics.load(ctl, TAIL) > head - SLOTS) {
        // Let it leave its loop, then end the thread either way.
        post(REQ_END);
      }
      await worker.terminate();
    },
  };
}
