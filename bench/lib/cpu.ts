// CPU time as the scheduler counts it (ns of on-CPU time), for figures that the VM's other load
// moves far less than wall clock: a process waiting for the CPU accrues none.
import { mkdirSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { join } from "node:path";

/** On-CPU ns of every thread of pid (schedstat), not the 10 ms ticks of /proc/<pid>/stat. */
export function taskCpuNs(pid: number): number {
  let ns = 0;
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0; // gone
  }
  for (const t of tasks) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]);
    } catch {} // a thread that just ended
  }
  return ns;
}

/** Pids of the kernel threads named exactly `comm` (kauditd does auditd's work in the kernel). */
export function kthreadPids(comm: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/comm`, "utf8").trim() === comm) out.push(Number(p));
    } catch {}
  }
  return out;
}

/**
 * A cgroup of its own under the cgroup v2 root for a workload: usage() is the CPU (user+sys, ns)
 * of everything that ran in it, children included, so a workload's in-syscall hook cost counts.
 */
export class CpuCgroup {
  readonly path: string;
  constructor(name: string) {
    const root = /^\S+ (\S+) cgroup2 /m.exec(readFileSync("/proc/self/mounts", "utf8"))?.[1];
    if (!root) throw new Error("no cgroup v2 mount: cannot measure CPU per workload");
    this.path = join(root, name);
    mkdirSync(this.path);
  }
  usageNs(): number {
    const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(this.path, "cpu.stat"), "utf8"));
    return Number(m?.[1] ?? 0) * 1000;
  }
  /** argv that runs argv inside this cgroup */
  wrap(argv: string[]): string[] {
    return ["sh", "-c", `echo $$ > '${this.path}/cgroup.procs' && exec "$@"`, "in-cgroup", ...argv];
  }
  remove(): void {
    try {
      rmdirSync(this.path);
    } catch {}
  }
}
