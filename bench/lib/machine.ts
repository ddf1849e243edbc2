// What every kernel benchmark does before it measures: take the kernel tests' machine-wide lock
// (a test's agent would be measured as "agent off", or its BPF as ours), and wait for other
// dpndncy agents to end. And the benchmarks' count knobs, read strictly.
import { spawnSync } from "node:child_process";
import { DirLock } from "../../test/support/dirlock.js";
import { runningAgents } from "../../test/support/kernel/lock.js";

/**
 * Takes the lock for `who` (unless the caller already holds it: DPNDNCY_LOCK_HELD=1), waiting up
 * to 10 min, and releases it at exit; then waits up to 2 min for other agents. False, having
 * said so, when the lock stayed held.
 */
export function takeMachine(who: string): boolean {
  if (process.env.DPNDNCY_LOCK_HELD !== "1") {
    const lock = new DirLock("/run/dpndncy-kernel-tests.lock", who);
    const deadline = Date.now() + 600_000;
    while (!lock.tryTake().taken) {
      if (Date.now() > deadline) {
        console.log(`${who}: the kernel tests' lock is held for 10 min; nothing measured.`);
        return false;
      }
      spawnSync("sleep", ["0.2"]);
    }
    process.on("exit", () => lock.release());
  }
  for (let i = 0; runningAgents().length > 0 && i < 120; i++) spawnSync("sleep", ["1"]);
  return true;
}

/** A whole number >= min from the environment, def when unset; anything else is an error that names it. */
export function envCount(name: string, def: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return def;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min)
    throw new Error(`${name}=${JSON.stringify(raw)}: not a whole number >= ${min}`);
  return v;
}
