// One kernel test file at a time, machine-wide. The kernel suite shares global state (hooks on
// every process, the pin directory /sys/fs/bpf/dpndncy, bpffs/tracefs mounts), so two files —
// or two vitest processes — must not interleave. vitest's fileParallelism setting does not
// cover every way the suite is started, so each file takes this lock for its whole run.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { DirLock } from "../dirlock.js";

const LOCK = "/run/dpndncy-kernel-tests.lock";
const lock = new DirLock(LOCK);

export async function acquireSuiteLock(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t = lock.tryTake();
    if (t.taken) return;
    if (Date.now() > deadline) {
      throw new Error(
        `another kernel test run holds ${LOCK} (${t.owner || "no owner"}) for too long`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function releaseSuiteLock(): void {
  lock.release();
}

/** dpndncy-agent processes on the machine ("pid cmdline"), whoever started them. */
export function runningAgents(): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const exe = readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, "");
      if (!exe.endsWith("/dpndncy-agent")) continue;
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
      out.push(`${pid} ${cmd}`);
    } catch {}
  }
  return out;
}

/**
 * The suite checks global kernel state (pins, mounts, programs) before and after each agent
 * run, so an agent someone else is running would make those checks lie. Wait for the machine
 * to be ours; fail clearly if it does not become so.
 */
export async function waitForNoForeignAgent(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    const others = runningAgents();
    if (others.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `dpndncy-agent processes not started by this test run are running; the kernel tests need the machine to themselves:\n  ${others.join("\n  ")}`,
      );
    }
    if (!told) {
      console.warn(
        `kernel tests: waiting for running dpndncy-agent processes to end:\n  ${others.join("\n  ")}`,
      );
      told = true;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
