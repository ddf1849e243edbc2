// The artifact service stand-in against the real @actions/artifact client, in process: a zip
// large enough for two blocks goes up, finalizes with the right size and hash, and comes back
// through getArtifact/downloadArtifact; a second upload of the same name is refused.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DefaultArtifactClient } from "@actions/artifact";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  type ArtifactStandIn,
  startArtifactStandIn,
} from "../support/artifact/artifact-stand-in.js";
import { readZip } from "../support/artifact/zip.js";

let svc: ArtifactStandIn;
const dir = mkdtempSync(join(tmpdir(), "dpndncy-artifact-"));
const saved = { ...process.env };

beforeAll(async () => {
  svc = await startArtifactStandIn();
  process.env.ACTIONS_RUNTIME_TOKEN = svc.token;
  process.env.ACTIONS_RESULTS_URL = svc.url;
  process.env.GITHUB_SERVER_URL = "https://github.com";
});
afterAll(async () => {
  process.env = saved;
  await svc?.close();
  rmSync(dir, { recursive: true, force: true });
});

it("uploads in blocks, finalizes with size and sha256, lists and downloads", async () => {
  const big = randomBytes(9 * 1024 * 1024); // incompressible: two 8 MiB blocks
  writeFileSync(join(dir, "big.bin"), big);
  mkdirSync(join(dir, "sub"));
  writeFileSync(join(dir, "sub/small.txt"), "hello\n");
  const client = new DefaultArtifactClient();
  const up = await client.uploadArtifact(
    "trace",
    [join(dir, "big.bin"), join(dir, "sub/small.txt")],
    dir,
    { retentionDays: 1 },
  );
  expect(up.id).toBe(1);
  expect(svc.calls.filter((c) => c === "PUT block")).toHaveLength(2);
  expect(svc.calls).toContain("PUT blocklist");
  expect(svc.calls).toContain("FinalizeArtifact");
  const zip = svc.content("trace");
  expect(zip?.length).toBe(up.size);
  expect(svc.artifacts[0]?.hash).toBe(`sha256:${up.digest}`);
  expect(svc.artifacts[0]?.mimeType).toBe("application/zip");
  const entries = readZip(zip ?? Buffer.alloc(0));
  expect([...entries.keys()].sort()).toEqual(["big.bin", "sub/small.txt"]);
  expect(entries.get("big.bin")?.equals(big)).toBe(true);

  const got = await client.getArtifact("trace");
  expect(got.artifact).toMatchObject({ id: 1, name: "trace", size: up.size });
  const out = join(dir, "out");
  await client.downloadArtifact(1, { path: out });
  expect(readFileSync(join(out, "sub/small.txt"), "utf8")).toBe("hello\n");
  expect(readFileSync(join(out, "big.bin")).equals(big)).toBe(true);

  await expect(client.uploadArtifact("trace", [join(dir, "big.bin")], dir)).rejects.toThrow(
    /409.*already exists/,
  );
});
