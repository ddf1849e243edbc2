// The kernel suite's whole-run check (vitest globalSetup of the kernel project): a run starts
// from what a fresh machine has and ends leaving nothing of ours behind, with nothing left to
// chance between files. Each file already compares the kernel's programs, links, pins and
// mounts before and after itself (suite.ts); this adds what outlives a file: directories under
// /run/dpndncy*, test cgroups, network namespaces, temp dirs, mounts made by an agent, and agent
// processes. `make test` runs the suite through scripts/fresh-view.sh (no bpffs, no tracefs),
// so the start state here is a fresh machine's but for what lives outside the mount table.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquireSuiteLock, releaseSuiteLock, runningAgents } from "./lock.js";
import { run } from "./proc.js";
import { ourPins, trackedMounts } from "./sysstate.js";

const LOCK = "/run/dpndncy-kernel-tests.lock";
/** read by scripts/test-summary.mjs, so the run's closing line says how this check went */
const RESULT = join(import.meta.dirname, "..", "..", "..", "build", "whole-run-check.txt");

function record(line: string): void {
  mkdirSync(join(RESULT, ".."), { recursive: true });
  writeFileSync(RESULT, `${line}\n`);
}

/** mountpoints of the given fstype in this mount namespace */
function mountsOf(fstype: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const [type, source] = line.slice(sep + 3).split(" ");
    const mp = line.slice(0, sep).split(" ")[4];
    if (mp && (type === fstype || (fstype === "dpndncy" && source === "dpndncy"))) out.push(mp);
  }
  return out;
}

function entries(dir: string, match: RegExp): string[] {
  try {
    return readdirSync(dir)
      .filter((n) => match.test(n))
      .map((n) => join(dir, n));
  } catch {
    return [];
  }
}

/** Everything of ours that can outlive a test file, one line each. */
export async function oursOnTheMachine(): Promise<string[]> {
  const out: string[] = [];
  for (const p of entries("/run", /^dpndncy/)) if (p !== LOCK) out.push(`${p} (under /run)`);
  for (const mp of mountsOf("dpndncy")) out.push(`mount made by an agent at ${mp}`);
  for (const m of trackedMounts()) if (/^(bpf|tracefs) /.test(m)) out.push(`${m} mounted`);
  for (const cg of [...new Set(mountsOf("cgroup2"))])
    for (const p of entries(cg, /^dpndncy/)) out.push(`cgroup ${p}`);
  const ns = await run(["ip", "netns", "list"]);
  for (const line of ns.stdout.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    if (/^(dpk-|dpndncy)/.test(name)) out.push(`network namespace ${name}`);
  }
  for (const p of entries("/etc/netns", /^(dpk-|dpndncy)/)) out.push(p);
  for (const p of entries(tmpdir(), /^dpndncy-kt-/)) out.push(`temp dir ${p}`);
  for (const p of ourPins()) out.push(`pin ${p}`);
  for (const a of runningAgents()) out.push(`dpndncy-agent process ${a}`);
  return out.sort();
}

let atStart: Set<string> = new Set();
const isRoot = process.getuid?.() === 0;

export async function setup(): Promise<void> {
  if (!isRoot || process.env.DPNDNCY_SKIP_KERNEL_TESTS === "1") return; // the files say why
  const found = await oursOnTheMachine();
  atStart = new Set(found);
  if (found.length === 0) return;
  const msg =
    `kernel tests: this machine is not in a fresh machine's state; an earlier run (or another ` +
    `one running now) left:\n  ${found.join("\n  ")}`;
  // CI machines are fresh: anything here means a run leaked, and tests could pass only
  // because of it. A developer's machine may have a run going in another checkout.
  if (process.env.CI === "true") {
    record(`whole-run check: FAILED at the start: ${found.join("; ")}`);
    throw new Error(msg);
  }
  console.warn(`${msg}\n(not fatal outside CI; CI=true makes it an error)`);
}

export async function teardown(): Promise<void> {
  if (!isRoot || process.env.DPNDNCY_SKIP_KERNEL_TESTS === "1") return;
  // Hold the file lock, so no file of another run is midway while we look.
  await acquireSuiteLock(15 * 60_000);
  try {
    const left = (await oursOnTheMachine()).filter((x) => !atStart.has(x));
    if (left.length > 0) {
      // vitest reports an exception thrown here but still exits 0: set the exit code ourselves
      console.error(`kernel tests left behind after the whole run:\n  ${left.join("\n  ")}`);
      record(`whole-run check: FAILED, left behind: ${left.join("; ")}`);
      process.exitCode = 1;
      return;
    }
    record("whole-run check: passed (nothing of ours left mounted, pinned or created)");
  } finally {
    releaseSuiteLock();
  }
}
