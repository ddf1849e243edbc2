// In-kernel cost of our BPF programs from kernel.bpf_stats_enabled: the kernel counts, per
// program, how many times it ran and the nanoseconds it spent (run_cnt, run_time_ns). Unlike
// wall-clock ratios this does not move with the VM's other load: it is the time our code runs.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const SYSCTL = "/proc/sys/kernel/bpf_stats_enabled";

export interface ProgStat {
  id: number;
  type: string;
  name: string;
  runCnt: number;
  runTimeNs: number;
}

/** Turns the counters on; returns a function that puts the previous setting back. */
export function enableBpfStats(): () => void {
  const was = readFileSync(SYSCTL, "utf8").trim();
  writeFileSync(SYSCTL, "1");
  return () => writeFileSync(SYSCTL, was);
}

export function listProgs(): ProgStat[] {
  const r = spawnSync("bpftool", ["prog", "show", "-j"], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`bpftool prog show: ${r.stderr}`);
  const arr = JSON.parse(r.stdout || "[]") as Array<Record<string, unknown>>;
  return arr.map((o) => ({
    id: Number(o.id),
    type: String(o.type ?? "?"),
    name: String(o.name ?? ""),
    runCnt: Number(o.run_cnt ?? 0),
    runTimeNs: Number(o.run_time_ns ?? 0),
  }));
}

/** Program ids present now: the agent's are the ones loaded after this. */
export function progIds(): Set<number> {
  return new Set(listProgs().map((p) => p.id));
}

/** Our programs: loaded since `before` was taken, named dp_* (bpf/*.bpf.c). */
export function ourProgs(before: Set<number>): ProgStat[] {
  return listProgs().filter((p) => !before.has(p.id) && p.name.startsWith("dp_"));
}

export interface ProgCost {
  label: string; // "type name"
  runs: number;
  ns: number;
}

/** What each program ran between two snapshots (only programs that ran). */
export function costBetween(a: readonly ProgStat[], b: readonly ProgStat[]): ProgCost[] {
  const before = new Map(a.map((p) => [p.id, p]));
  const out: ProgCost[] = [];
  for (const p of b) {
    const q = before.get(p.id);
    const runs = p.runCnt - (q?.runCnt ?? 0);
    const ns = p.runTimeNs - (q?.runTimeNs ?? 0);
    if (runs > 0) out.push({ label: `${p.type} ${p.name}`, runs, ns });
  }
  return out.sort((x, y) => y.ns - x.ns);
}
