// The log's SHA-256 in a worker thread (digest.ts) equals the one computed in this thread: for
// any split of the bytes into updates (empty ones, ones larger than a ring slot and than the
// whole ring, so the writer waits for the worker), with digests of prefixes in between, and
// on a whole log whose stop record spans summarizeFile's 256 KiB reads.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { threadDigest, workerDigest } from "../../src/trace/digest.js";
import { summarizeFile, WORKER_MIN_BYTES, wantWorker } from "../../src/trace/summarize.js";

const dir = mkdtempSync(join(tmpdir(), "dpndncy-digest-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

// Deterministic bytes, not all equal (a digest of zeros would hide a dropped slot less well).
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 255;
  }
  return b;
}

describe("workerDigest = threadDigest", () => {
  it("for updates of every size, with prefix digests in between, buffers reused by the caller", async () => {
    const sizes = [
      0,
      1,
      5,
      256 * 1024 - 1,
      256 * 1024,
      256 * 1024 + 1,
      0,
      5 * 1024 * 1024,
      3,
      70_000,
    ];
    const w = workerDigest();
    const t = threadDigest();
    const all: Buffer[] = [];
    const scratch = Buffer.alloc(6 * 1024 * 1024);
    try {
      expect(w.digest()).toBe(sha256(""));
      sizes.forEach((n, i) => {
        const piece = bytes(n, i + 1);
        piece.copy(scratch);
        const view = scratch.subarray(0, n);
        w.update(view);
        t.update(view);
        scratch.fill(0xaa); // the caller reuses its buffer at once
        all.push(piece);
        const want = sha256(Buffer.concat(all));
        expect(w.digest()).toBe(want);
        expect(t.digest()).toBe(want);
      });
    } finally {
      await w.close();
      await w.close(); // twice is harmless
    }
    expect(() => w.update(Buffer.from("x"))).toThrow(/closed/);
  });
});

describe("summarizeFile hashing in a worker", () => {
  it("gives the same predicate, and the stop record's check sees exactly the bytes before it", async () => {
    // ~600 KiB of lines so the stop record starts in one 256 KiB read and ends in the next.
    const line = (seq: number, kind: string, extra: string) =>
      `{"v":1,"kind":"${kind}","ts":"2026-11-20T10:00:00.000000000Z","seq":${seq},"pid":7,"ppid":1,"uid":0,"comm":"sh","cgroup":1,"step":null${extra}}\n`;
    let body = line(0, "agent", ',"event":"start","version":"0.1.0"');
    let seq = 1;
    const stopAt = 2 * 256 * 1024 - 50; // where the stop record starts: 50 bytes before a read ends
    while (body.length < stopAt - 400) body += line(seq++, "exit", ',"code":1');
    // An unknown property (the schema allows them) pads the last line to land the stop record.
    const short = line(seq, "exit", ',"code":1,"pad":""');
    body += line(
      seq++,
      "exit",
      `,"code":1,"pad":"${"p".repeat(stopAt - body.length - short.length)}"`,
    );
    expect(body.length).toBe(stopAt);
    const stop = line(
      seq,
      "agent",
      `,"event":"stop","version":"0.1.0","complete":true,"log_sha256":"${sha256(body)}"`,
    );
    const path = join(dir, "log.ndjson");
    writeFileSync(path, body + stop + line(seq + 1, "exit", ',"code":0'));
    expect(body.length + stop.length).toBeGreaterThan(2 * 256 * 1024);

    const inThread = await summarizeFile(path, { hashWorker: false });
    const inWorker = await summarizeFile(path, { hashWorker: true });
    expect(inWorker).toEqual(inThread);
    expect(inWorker.integrity.log_sha256_match).toBe(true);
    expect(inWorker.integrity.problems).toEqual(["LINES_AFTER_STOP"]);
    expect(inWorker.log.sha256).toBe(sha256(body + stop + line(seq + 1, "exit", ',"code":0')));
  });
});

describe("wantWorker", () => {
  it("only for a large file with a second CPU", () => {
    const big = WORKER_MIN_BYTES;
    expect(wantWorker(big, 2)).toBe(true);
    expect(wantWorker(big, 1)).toBe(false);
    expect(wantWorker(big - 1, 8)).toBe(false); // its start-up would not pay
  });
});
