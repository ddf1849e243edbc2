import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseReleasePin } from "../../src/agent/release.js";
import { snippet } from "../support/readme.js";

// scripts/release-pin.mjs writes what a tag's action and component run (from build/release/
// SHA256SUMS) and, at the tag, checks a rebuild against it. Run on a copy of the files it
// touches, with a SHA256SUMS of made-up digests.
const SCRIPT = resolve("scripts/release-pin.mjs");
const root = mkdtempSync(join(tmpdir(), "dpndncy-release-pin-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const version = JSON.parse(readFileSync("package.json", "utf8")).version as string;
const D = (c: string) => c.repeat(64);
const SUMS = `${D("a")}  dpndncy-agent-linux-amd64\n${D("b")}  dpndncy-agent-linux-arm64\n${D("c")}  cli.js\n${D("d")}  cli.js.LEGAL.txt\n`;

function tree(): string {
  const dir = mkdtempSync(join(root, "t-"));
  for (const f of [
    "package.json",
    "templates/agent.yml",
    "templates/sign.yml",
    "src/agent/release.json",
  ]) {
    mkdirSync(join(dir, f, ".."), { recursive: true });
    cpSync(f, join(dir, f));
  }
  mkdirSync(join(dir, "build/release"), { recursive: true });
  writeFileSync(join(dir, "build/release/SHA256SUMS"), SUMS);
  return dir;
}
const pin = (cwd: string, cmd: string, env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [SCRIPT, cmd], { cwd, env: { ...process.env, ...env } });
type Spec = { spec: { inputs: Record<string, { default: string; regex?: string }> } };
const inputs = (text: string) => (parse(text.split("\n---\n")[0] ?? "") as Spec).spec.inputs;

describe("release pins", () => {
  it("write pins the action's digests and only the components' download defaults", () => {
    const dir = tree();
    const before = readFileSync(join(dir, "templates/agent.yml"), "utf8");
    const w = pin(dir, "write");
    expect(w.status, w.stderr.toString()).toBe(0);
    const p = parseReleasePin(readFileSync(join(dir, "src/agent/release.json"), "utf8"), "pin");
    const base = `https://github.com/dpndncy/agent/releases/download/v${version}`;
    expect(p).toEqual({
      version,
      baseUrl: base,
      sha256: {
        "dpndncy-agent-linux-amd64": D("a"),
        "dpndncy-agent-linux-arm64": D("b"),
        "cli.js": D("c"),
      },
    });
    const after = readFileSync(join(dir, "templates/agent.yml"), "utf8");
    const changed = after.split("\n").filter((l, i) => l !== before.split("\n")[i]);
    expect(changed).toHaveLength(6);
    const spec = inputs(after);
    expect(spec["agent-url"]?.default).toBe(`${base}/dpndncy-agent-linux-amd64`);
    expect(spec["agent-sha256"]?.default).toBe(D("a"));
    // the aarch64 pair, which the before_script picks by `uname -m`
    expect(spec["agent-url-arm64"]?.default).toBe(`${base}/dpndncy-agent-linux-arm64`);
    expect(spec["agent-sha256-arm64"]?.default).toBe(D("b"));
    expect(spec["cli-url"]?.default).toBe(`${base}/cli.js`);
    expect(spec["cli-sha256"]?.default).toBe(D("c"));
    const sign = inputs(readFileSync(join(dir, "templates/sign.yml"), "utf8"));
    expect([sign["cli-url"]?.default, sign["cli-sha256"]?.default]).toEqual([
      `${base}/cli.js`,
      D("c"),
    ]);
    // GitLab checks an input's default against its own regex too
    for (const k of [
      "agent-url",
      "agent-sha256",
      "agent-url-arm64",
      "agent-sha256-arm64",
      "cli-url",
      "cli-sha256",
    ]) {
      const i = spec[k];
      expect(new RegExp(i?.regex ?? "").test(i?.default ?? ""), k).toBe(true);
    }
  });

  it("verify passes for the pinned build and names every pin a rebuild does not match", () => {
    const dir = tree();
    expect(pin(dir, "write").status).toBe(0);
    mkdirSync(join(dir, "dist"));
    cpSync(join(dir, "src/agent/release.json"), join(dir, "dist/release.json"));
    const ok = pin(dir, "verify", { RELEASE_TAG: `v${version}` });
    expect(ok.status, ok.stderr.toString()).toBe(0);

    writeFileSync(join(dir, "build/release/SHA256SUMS"), SUMS.replace(D("b"), D("e")));
    const bad = pin(dir, "verify");
    expect(bad.status).toBe(1);
    const err = bad.stderr.toString();
    expect(err).toContain(
      `src/agent/release.json: dpndncy-agent-linux-arm64 pinned ${D("b")}, built ${D("e")}`,
    );
    expect(err).toContain(`dist/release.json: dpndncy-agent-linux-arm64 pinned ${D("b")}`);

    writeFileSync(join(dir, "build/release/SHA256SUMS"), SUMS.replace(D("c"), D("f")));
    expect(pin(dir, "verify").stderr.toString()).toContain(
      `templates/agent.yml: input cli-sha256 defaults to "${D("c")}", expected "${D("f")}"`,
    );
    expect(pin(dir, "verify", { RELEASE_TAG: "v9.9.9" }).stderr.toString()).toContain(
      `tag v9.9.9 is not package.json's version v${version}`,
    );
  });

  it('README snippet("quickstart-gitlab"): the bare include gets every download input from a released component', () => {
    const ci = parse(snippet("quickstart-gitlab").body) as { include: unknown };
    expect(ci.include).toEqual([{ component: "$CI_SERVER_FQDN/dpndncy/agent/agent@1" }]);
    // no inputs given: the before_script needs these (the -arm64 pair on aarch64 runners), and
    // release-pin gives them all
    const dir = tree();
    expect(pin(dir, "write").status).toBe(0);
    const spec = inputs(readFileSync(join(dir, "templates/agent.yml"), "utf8"));
    for (const k of [
      "agent-url",
      "agent-sha256",
      "agent-url-arm64",
      "agent-sha256-arm64",
      "cli-url",
      "cli-sha256",
    ])
      expect(spec[k]?.default, k).toMatch(/^(https:\/\/\S+|[0-9a-f]{64})$/);
  });

  it("a development commit's component pins nothing (its before_script says so)", () => {
    const spec = inputs(readFileSync("templates/agent.yml", "utf8"));
    const pinned = JSON.parse(readFileSync("src/agent/release.json", "utf8")).sha256;
    // the component and the action are pinned together, or not at all
    expect(spec["agent-sha256"]?.default === "").toBe(pinned["dpndncy-agent-linux-amd64"] === null);
    expect(spec["cli-sha256"]?.default === "").toBe(pinned["cli.js"] === null);
  });
});
