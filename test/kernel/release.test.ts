import { execFile, execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { snippet } from "../support/readme.js";

// `make release` must be reproducible: the same commit built in two different directories
// gives byte-identical agents (both architectures), CLI and SHA256SUMS, so anyone can rebuild
// a release and compare it with the published digests. One directory is a plain copy built
// by scripts/release.sh; the other is a git checkout where a maintainer runs `make
// release-pin` (RELEASING.md), later commits the pins and rebuilds as the release workflow
// does at the tag. Not a kernel test, but builds of static agents: it runs with the serial
// kernel project rather than alongside the unit tests. The toolchain pin check is skipped for
// the builds (DPNDNCY_RELEASE_UNPINNED=1): identical bytes here do not depend on which Debian
// point release this machine has; the check itself is tested against a differing lock file.
const run = promisify(execFile);
const repo = process.cwd();
const root = mkdtempSync(join(tmpdir(), "dpndncy-release-"));
// different depths and names: a build path that leaked into a binary would change its bytes
const one = join(root, "one");
const two = join(root, "second", "checkout-with-a-longer-name");
const dirs = [one, two];
const FILES = [
  "dpndncy-agent-linux-amd64",
  "dpndncy-agent-linux-arm64",
  "cli.js",
  "cli.js.LEGAL.txt",
  "SHA256SUMS",
];

function copyTree(dest: string): void {
  mkdirSync(dest, { recursive: true });
  // the tree as committed plus local edits (what `make release` would build), no build/
  // safe.directory: CI checks out as another user than the container's root
  const files = execFileSync(
    "git",
    ["-c", `safe.directory=${repo}`, "ls-files", "-co", "--exclude-standard", "-z"],
    { cwd: repo },
  )
    .toString()
    .split("\0")
    .filter((f) => f && !f.startsWith("build/"));
  execFileSync("cp", ["--parents", "-t", dest, ...files], { cwd: repo });
  // hard links: a real directory for esbuild (a symlink would put this repo's path in
  // cli.js); a full copy where the temp dir is on another filesystem (CI containers)
  try {
    execFileSync("cp", ["-al", join(repo, "node_modules"), dest], { stdio: "ignore" });
  } catch {
    rmSync(join(dest, "node_modules"), { recursive: true, force: true });
    execFileSync("cp", ["-a", join(repo, "node_modules"), dest]);
  }
}

const GIT_DATE = "2026-01-01T00:00:00Z";
function git(cwd: string, ...args: string[]): string {
  return execFileSync(
    "git",
    ["-c", "user.name=dpndncy test", "-c", "user.email=test@example.invalid", ...args],
    { cwd, env: { ...process.env, GIT_COMMITTER_DATE: GIT_DATE, GIT_AUTHOR_DATE: GIT_DATE } },
  )
    .toString()
    .trim();
}
let source = ""; // the checkout's commit: what both builds must report
const unpinned = { ...process.env, DPNDNCY_RELEASE_UNPINNED: "1" };
// whatever a shell has in these, a release names its own commit and time (make exports its
// own COMMIT/SOURCE_DATE_EPOCH to what it runs, so release.sh must not read them)
const noisy = { ...unpinned, COMMIT: "from-the-environment", SOURCE_DATE_EPOCH: "1" };

beforeAll(async () => {
  for (const d of dirs) copyTree(d);
  git(two, "init", "-q");
  git(two, "add", "-A");
  git(two, "commit", "-q", "-m", "source");
  source = git(two, "rev-parse", "--short=12", "HEAD");
  const time = git(two, "log", "-1", "--format=%ct");
  // both at once: each builds both architectures in parallel already, the machine has 2 CPUs
  await Promise.all([
    run("scripts/release.sh", [], {
      cwd: one,
      env: { ...unpinned, RELEASE_COMMIT: source, RELEASE_SOURCE_DATE_EPOCH: time },
    }),
    run("make", ["-s", "release-pin"], { cwd: two, env: noisy }),
  ]);
}, 170_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const file = (d: string, f: string) => readFileSync(join(d, "build", "release", f));

describe("make release is reproducible", () => {
  it("two directories give byte-identical release files", () => {
    for (const f of FILES) {
      expect(file(one, f).equals(file(two, f)), `${f} differs between the two builds`).toBe(true);
    }
  });

  it("the agents are static ELF executables for x86_64 and aarch64", () => {
    // e_machine at offset 18: 62 = x86-64, 183 = AArch64; no PT_INTERP means static
    for (const [f, machine, name] of [
      ["dpndncy-agent-linux-amd64", 62, "x86-64"],
      ["dpndncy-agent-linux-arm64", 183, "ARM aarch64"],
    ] as const) {
      const b = file(one, f);
      expect(b.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
      expect(b.readUInt16LE(18), `${f} machine`).toBe(machine);
      const desc = execFileSync("file", ["-b", join(one, "build", "release", f)]).toString();
      expect(desc).toContain(name);
      expect(desc).toContain("statically linked");
    }
  });

  it("no build path is left in any file", () => {
    for (const f of FILES) {
      for (const d of dirs) expect(file(d, f).includes(d), `${d} inside ${f}`).toBe(false);
      expect(file(one, f).includes(root), `${root} inside ${f}`).toBe(false);
    }
  });

  it('README snippet("verify-download"): sha256sum -c passes on a download; the gh line names a release file and this repository', () => {
    const [check, gh] = snippet("verify-download")
      .body.split("\n")
      .map((l) => l.replace(/\s+#.*$/, "").trim())
      .filter(Boolean);
    // a user's download dir: one agent and SHA256SUMS (--ignore-missing skips the rest)
    const dl = join(root, "download");
    mkdirSync(dl, { recursive: true });
    for (const f of ["dpndncy-agent-linux-amd64", "SHA256SUMS"])
      writeFileSync(join(dl, f), file(one, f));
    const ok = spawnSync("sh", ["-c", check ?? ""], { cwd: dl });
    expect(ok.status, ok.stderr.toString()).toBe(0);
    expect(ok.stdout.toString().trim()).toBe("dpndncy-agent-linux-amd64: OK");
    writeFileSync(join(dl, "dpndncy-agent-linux-amd64"), "tampered");
    expect(spawnSync("sh", ["-c", check ?? ""], { cwd: dl }).status).not.toBe(0);
    // gh attestation verify talks to GitHub's attestation API: not runnable here
    expect(gh).toBe("gh attestation verify dpndncy-agent-linux-amd64 --repo dpndncy/agent");
  });

  it("SHA256SUMS verifies with sha256sum -c", () => {
    const r = spawnSync("sha256sum", ["-c", "SHA256SUMS"], {
      cwd: join(one, "build", "release"),
    });
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(r.stdout.toString().trim().split("\n")).toHaveLength(4);
  });

  it("the agents report the commit they were built from", () => {
    for (const d of dirs) {
      const out = execFileSync(join(d, "build", "release", "dpndncy-agent-linux-amd64"), [
        "--version",
      ]).toString();
      expect(out).toContain(`commit ${source}`);
    }
  });
});

describe("the toolchain pin", () => {
  const lock = join(one, "scripts", "release-toolchain.lock");

  it("passes for the machine's own versions, and names each difference otherwise", () => {
    const mine = execFileSync("scripts/release-toolchain.sh", ["print"], { cwd: one });
    writeFileSync(lock, mine);
    expect(spawnSync("scripts/release-toolchain.sh", ["check"], { cwd: one }).status).toBe(0);

    const edited = mine
      .toString()
      .replace(/^(libbpf-dev:arm64) (\S+)$/m, "$1 9.9.9-1")
      .replace(/^debian \S+$/m, "debian trixie");
    writeFileSync(lock, edited);
    const r = spawnSync("scripts/release-toolchain.sh", ["check"], { cwd: one });
    expect(r.status).toBe(1);
    const err = r.stderr.toString();
    expect(err).toMatch(/libbpf-dev:arm64 is \S+, scripts\/release-toolchain.lock pins 9\.9\.9-1/);
    expect(err).toContain("pins 'trixie'");
    expect(err).toContain("would not match the published SHA-256s");
  });

  it("make release stops before building on a toolchain mismatch", () => {
    const r = spawnSync("scripts/release.sh", [], {
      cwd: one,
      env: { ...process.env, RELEASE_COMMIT: "x", RELEASE_SOURCE_DATE_EPOCH: "1" },
    });
    expect(r.status).toBe(1);
    expect(r.stderr.toString()).toContain("pins 9.9.9-1");
    expect(r.stdout.toString()).not.toContain("release: build/release");
  });

  it("a tag that is not package.json's version is refused", () => {
    const r = spawnSync("scripts/release.sh", [], {
      cwd: two,
      env: { ...process.env, RELEASE_TAG: "v99.0.0", DPNDNCY_RELEASE_UNPINNED: "1" },
    });
    expect(r.status).toBe(1);
    expect(r.stderr.toString()).toMatch(/tag v99\.0\.0 does not match package\.json version/);
  });
});

describe("pin, commit, tag, rebuild: the tag's rebuild gives the pinned bytes", () => {
  // It can only if the pin commit does not change the agents: they report the last commit
  // that changed anything but the pins.
  it("make release-verify passes at the pin commit, and the agent names the commit before it", () => {
    expect(git(two, "diff", "--name-only").split("\n").sort()).toEqual([
      "dist/release.json",
      "src/agent/release.json",
      "templates/agent.yml",
      "templates/sign.yml",
    ]);
    git(two, "commit", "-q", "-am", "pin release digests");
    const version = JSON.parse(readFileSync(join(two, "package.json"), "utf8")).version;
    const tagged = spawnSync("make", ["-s", "release", "release-verify"], {
      cwd: two,
      env: { ...noisy, RELEASE_TAG: `v${version}` },
    });
    expect(tagged.status, tagged.stderr.toString()).toBe(0);
    expect(tagged.stdout.toString()).toContain("pin exactly these files");
    const out = execFileSync(join(two, "build/release/dpndncy-agent-linux-amd64"), ["--version"]);
    expect(out.toString()).toContain(`commit ${source}`);
    // and the same bytes as the plain copy built before anything was pinned
    for (const f of FILES) expect(file(two, f).equals(file(one, f)), f).toBe(true);
  }, 170_000);
});
