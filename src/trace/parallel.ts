// The summarizer's fast path for large logs: worker threads parse, validate and fold batches of
// whole lines while this thread reads the file, hashes it, and merges the batch folds in log
// order. The in-thread reader (lines.ts + fold.ts) stays the reference: this path gives the
// same predicate byte for byte, and declines (returns a reason) whenever that would take more
// than simple bookkeeping, so the caller re-reads the log in-thread:
//   - small logs or a single CPU (starting workers costs more than it saves);
//   - a line longer than a batch (it would have to span batches);
//   - a capped collection overflowing (Accumulator.merge explains why);
//   - any worker failure.
//
// Bundling: dist/ has one self-contained file per entry (scripts/bundle.mjs), so a worker runs
// the very bundle that started it (import.meta.url) and is recognised by its workerData tag.
// The top-level await at the bottom of this module then parks the worker in serve(), so the
// entry's own top-level code (the CLI's main, the action's run) never runs in a worker. From
// the TypeScript sources (tests, bench) the same URL is this .ts file.
import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { DEFAULT_LIMITS, UNCAPPED } from "./accumulate.js";
import { type FoldState, TraceFold } from "./fold.js";
import { DEFAULT_MAX_LINE_BYTES, forEachLine, type LineInfo } from "./lines.js";
import type { Limits } from "./types.js";

/** Below this size the in-thread reader is as fast as starting workers. */
export const PARALLEL_MIN_BYTES = 8 << 20;
/**
 * Bytes per batch: big enough that per-batch costs (a message, merging the batch's distinct
 * destinations, names and execs) are small next to its lines, small enough that the batches in
 * flight (2 per worker) keep peak RSS low.
 */
const BATCH_BYTES = 4 << 20;
const MAX_WORKERS = 4;
const WORKER_TAG = "dpndncy-trace-worker/1";

export interface ParallelOptions {
  limits?: Partial<Limits>;
  maxLineBytes?: number;
  /** Worker threads: 0 never, a number always (tests); default: one per CPU for large logs. */
  threads?: number;
  /** Bytes per batch (tests use small batches to exercise merging). */
  batchBytes?: number;
}

export type ParallelOutcome =
  | { fold: TraceFold; read: { sha256: string; bytes: number } }
  | { declined: string };

export async function summarizeParallel(
  path: string,
  opts: ParallelOptions,
): Promise<ParallelOutcome> {
  const cpus = availableParallelism();
  const threads = opts.threads ?? (cpus > 1 ? Math.min(cpus, MAX_WORKERS) : 0);
  if (threads < 1) return { declined: "no worker threads" };
  const maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const batchBytes = opts.batchBytes ?? BATCH_BYTES;
  if (maxLineBytes >= batchBytes) return { declined: "a line may not fit a batch" };
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    if (opts.threads === undefined && size < PARALLEL_MIN_BYTES) return { declined: "small log" };
    const pool = new WorkerPool(threads, maxLineBytes);
    try {
      return await run(fh, pool, { ...DEFAULT_LIMITS, ...opts.limits }, maxLineBytes, batchBytes);
    } catch (e) {
      return { declined: `worker failed: ${(e as Error).message}` };
    } finally {
      await pool.close();
    }
  } finally {
    await fh.close();
  }
}

interface InFlight {
  buf: Buffer;
  state: Promise<FoldState>;
}

async function run(
  fh: FileHandle,
  pool: WorkerPool,
  limits: Limits,
  maxLineBytes: number,
  batchBytes: number,
): Promise<ParallelOutcome> {
  const fold = new TraceFold(limits, maxLineBytes);
  const hash = createHash("sha256");
  let bytes = 0;
  let lineBase = 0;
  // Batch memory is shared with the workers (no copy) and reused; a batch's bytes are hashed
  // when its fold comes back, because only then is the stop line's offset known.
  const free: Buffer[] = [];
  const inFlight: InFlight[] = [];
  let carry = Buffer.alloc(0);

  // Merges the oldest batch; false if the fold cannot be merged exactly (see TraceFold.merge).
  const absorb = async (): Promise<boolean> => {
    const b = inFlight.shift() as InFlight;
    const state = await b.state;
    let hashed = 0;
    const digestAt = (offset: number): string => {
      hash.update(b.buf.subarray(0, offset));
      hashed = offset;
      return hash.copy().digest("hex");
    };
    if (!fold.merge(state, lineBase, digestAt)) return false;
    hash.update(b.buf.subarray(hashed));
    bytes += b.buf.length;
    lineBase += state.lines.total;
    free.push(Buffer.from(b.buf.buffer as SharedArrayBuffer));
    return true;
  };

  for (;;) {
    const block = free.pop() ?? Buffer.from(new SharedArrayBuffer(batchBytes));
    carry.copy(block);
    let n = carry.length;
    while (n < block.length) {
      const { bytesRead } = await fh.read(block, n, block.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    const eof = n < block.length;
    let end = n;
    if (!eof) {
      const last = block.lastIndexOf(10, n - 1);
      if (last === -1) return { declined: `a line longer than ${batchBytes} bytes` };
      end = last + 1;
    }
    carry = Buffer.from(block.subarray(end, n));
    if (end > 0) {
      const buf = block.subarray(0, end);
      inFlight.push({ buf, state: pool.fold(buf) });
    }
    while (inFlight.length > 0 && (eof || inFlight.length >= pool.size * 2)) {
      if (!(await absorb())) return { declined: "a limit overflowed" };
    }
    if (eof) break;
  }
  return { fold, read: { sha256: hash.digest("hex"), bytes } };
}

/** Batches go to the least busy worker; answers come back by id. */
class WorkerPool {
  private readonly workers: { w: Worker; busy: number }[] = [];
  private readonly waiting = new Map<
    number,
    { resolve: (s: FoldState) => void; reject: (e: Error) => void; worker: number }
  >();
  private nextId = 0;

  constructor(size: number, maxLineBytes: number) {
    // eval'd bootstrap: import this module (see the header), teaching Node the sources'
    // ".js"-for-".ts" specifiers when running unbundled.
    const boot = `
      const { workerData } = require("node:worker_threads");
      if (workerData.url.endsWith(".ts")) {
        require("node:module").registerHooks({
          resolve(s, c, next) {
            try { return next(s, c); } catch (e) {
              if (s.startsWith(".") && s.endsWith(".js")) return next(s.slice(0, -3) + ".ts", c);
              throw e;
            }
          },
        });
      }
      import(workerData.url);`;
    for (let i = 0; i < size; i++) {
      const w = new Worker(boot, {
        eval: true,
        workerData: { tag: WORKER_TAG, url: import.meta.url, maxLineBytes },
      });
      w.on("message", (m: { id: number; state?: FoldState; error?: string }) => {
        const job = this.waiting.get(m.id);
        if (!job) return;
        this.waiting.delete(m.id);
        (this.workers[job.worker] as { busy: number }).busy -= 1;
        if (m.state) job.resolve(m.state);
        else job.reject(new Error(m.error ?? "no answer"));
      });
      const fail = (e: Error): void => {
        for (const [id, job] of this.waiting) {
          if (job.worker !== i) continue;
          this.waiting.delete(id);
          job.reject(e);
        }
      };
      w.on("error", fail);
      w.on("exit", (code) => fail(new Error(`worker exited (${code})`)));
      this.workers.push({ w, busy: 0 });
    }
  }

  get size(): number {
    return this.workers.length;
  }

  fold(buf: Buffer): Promise<FoldState> {
    let best = 0;
    this.workers.forEach((x, i) => {
      if (x.busy < (this.workers[best] as { busy: number }).busy) best = i;
    });
    const worker = this.workers[best] as { w: Worker; busy: number };
    worker.busy += 1;
    const id = this.nextId++;
    const state = new Promise<FoldState>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, worker: best });
    });
    worker.w.postMessage({ id, sab: buf.buffer, length: buf.length });
    return state;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((x) => x.w.terminate()));
  }
}

/** In a worker: the fold of one batch of whole lines (the log's last may lack its "\n"). */
export function foldBatch(buf: Buffer, maxLineBytes: number): FoldState {
  const fold = new TraceFold(UNCAPPED, maxLineBytes, true);
  const info: LineInfo = { number: 0, terminated: true, oversize: false };
  let lineStart = 0;
  // The stop line's digest is the main thread's to compute; the fold only says where it is.
  const noteStop = (): string => {
    fold.stopOffset = lineStart;
    return "";
  };
  const last = buf.lastIndexOf(10);
  if (last >= 0) {
    forEachLine(buf, 0, last, maxLineBytes, (text, bytes, oversize, start) => {
      lineStart = start;
      info.number += 1;
      info.oversize = oversize;
      fold.line(text, text === null ? bytes : null, info, noteStop);
    });
  }
  if (last + 1 < buf.length) {
    lineStart = last + 1;
    const tail = buf.subarray(lineStart);
    info.number += 1;
    info.terminated = false;
    info.oversize = tail.length > maxLineBytes;
    fold.line(null, info.oversize ? Buffer.alloc(0) : tail, info, noteStop);
  }
  return fold.state();
}

function serve(): Promise<never> {
  const port = parentPort;
  const { maxLineBytes } = workerData as { maxLineBytes: number };
  port?.on("message", (m: { id: number; sab: SharedArrayBuffer; length: number }) => {
    try {
      const state = foldBatch(Buffer.from(m.sab, 0, m.length), maxLineBytes);
      port.postMessage({ id: m.id, state });
    } catch (e) {
      port.postMessage({
        id: m.id,
        error: e instanceof Error ? (e.stack ?? e.message) : String(e),
      });
    }
  });
  // Never settles: the worker lives until the pool terminates it, and (see the header) the
  // top-level await below keeps the rest of the bundle from running in it.
  return new Promise<never>(() => {});
}

if (!isMainThread && (workerData as { tag?: unknown } | null)?.tag === WORKER_TAG) {
  await serve();
}
