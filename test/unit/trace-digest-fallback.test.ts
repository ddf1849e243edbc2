// Where no worker thread can be started, summarizeFile hashes in its own thread: the same
// predicate, never a skipped hash. (A file of its own: the module mock below is file-wide.)
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { workerDigest } from "../../src/trace/digest.js";
import { summarizeFile } from "../../src/trace/summarize.js";

vi.mock("node:worker_threads", () => ({
  Worker: class {
    constructor() {
      throw new Error("no threads here");
    }
  },
}));

const dir = mkdtempSync(join(tmpdir(), "dpndncy-digest-fallback-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("no worker thread", () => {
  it("summarizeFile hashes in its own thread and gives the same predicate", async () => {
    expect(() => workerDigest()).toThrow(/no threads here/);
    const path = join(dir, "attack.ndjson");
    writeFileSync(path, readFileSync(join(import.meta.dirname, "../fixtures/attack.ndjson")));
    const asked = await summarizeFile(path, { hashWorker: true });
    expect(asked).toEqual(await summarizeFile(path, { hashWorker: false }));
    expect(asked.integrity.log_sha256_match).toBe(true);
  });
});
