// Where the CPU an exec costs with dpndncy goes (issue #20: bench/peers found +78..109 µs of CPU
// per exec of /bin/true, of which the BPF programs' own run time is ~9 µs).
//
// 1. CPU rounds: the same exec loop, interleaved over rounds (off, dpndncy, dpndncy without the
//    getaddrinfo uprobe, dpndncy without the ia32 ptrace watch, ...), each counted as the scheduler
//    counts it: the workload's cgroup (cpu.stat: user and system, so hook time inside its syscalls
//    and page faults counts) and the agent's threads (schedstat). "added" is the median over
//    rounds of (variant - off) of the same round, with a 95 % interval; a variant's cost is
//    reported only when the interval says so.
// 2. Attribution (one more run per variant, perf and bpf_stats on: they perturb, so never in the
//    rounds): cpu-clock samples of the workload's processes, system-wide with call chains, put
//    into causes by the frames in each chain (uprobe breakpoint installation/removal, our BPF
//    programs with the kernel's glue around them, the syscall-tracepoint slow path); and
//    kernel.bpf_stats_enabled's run time of our programs per exec.
// Never fails (exit 0). Needs root, build/dpndncy-agent; perf (linux-perf) for part 2.
// Knobs: BENCH_ROUNDS (10), BENCH_EXECS (2000), BENCH_EXEC_VARIANTS (of dpndncy,no-gai,no-ia32,baseline),
// BENCH_EXEC_BASELINE (another agent binary, measured as one more variant: before/after).
import "../resolve-ts.mjs"; // first: the dynamic imports below resolve through it
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const { median, medianCI } = await import("../lib/stats.js");
const { CpuCgroup, taskCpuNs } = await import("../lib/cpu.js");
const { costBetween, enableBpfStats, ourProgs, progIds } = await import("../lib/bpfstats.js");

const { takeMachine } = await import("../lib/machine.js");

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const AGENT = process.env.DPNDNCY_AGENT ?? join(REPO, "build/dpndncy-agent");
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const N = Number(process.env.BENCH_EXECS ?? 2000);

interface Variant {
  key: string; // for BENCH_EXEC_VARIANTS
  name: string;
  /** environment of the agent; undefined: no agent */
  env?: Record<string, string>;
  /** another agent binary (BENCH_EXEC_BASELINE: before/after a change in the same rounds) */
  agent?: string;
}
const ALL: Variant[] = [
  { key: "off", name: "off" },
  { key: "dpndncy", name: "dpndncy", env: {} },
  {
    key: "no-gai",
    name: "dpndncy, no getaddrinfo uprobe",
    env: { DPNDNCY_NO_GAI_UPROBE: "1" },
  },
  { key: "no-ia32", name: "dpndncy, no ia32 ptrace watch", env: { DPNDNCY_NO_TAMPER32: "1" } },
];
const BASELINE = process.env.BENCH_EXEC_BASELINE;
if (BASELINE)
  ALL.splice(1, 0, { key: "baseline", name: "baseline agent", env: {}, agent: BASELINE });
const pick = process.env.BENCH_EXEC_VARIANTS?.split(",").map((s) => s.trim());
const VARIANTS = ALL.filter((v) => v.key === "off" || !pick || pick.includes(v.key));

function sh(argv: string[], env?: Record<string, string>) {
  const [f, ...a] = argv;
  const r = spawnSync(f as string, a, {
    encoding: "utf8",
    timeout: 600_000,
    maxBuffer: 256 << 20,
    env: { ...process.env, ...env },
  });
  return { code: r.status, out: r.stdout ?? "", err: r.stderr ?? String(r.error ?? "") };
}
function must(argv: string[], env?: Record<string, string>): string {
  const r = sh(argv, env);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.err.trim()}`);
  return r.out;
}

/** cpu.stat of a cgroup: usage, user and system in ns */
function cgStat(path: string): { usage: number; user: number; sys: number } {
  const s = readFileSync(join(path, "cpu.stat"), "utf8");
  const f = (k: string) => Number(new RegExp(`^${k} (\\d+)$`, "m").exec(s)?.[1] ?? 0) * 1000;
  return { usage: f("usage_usec"), user: f("user_usec"), sys: f("system_usec") };
}

// Causes, first match wins, tested against every frame of a sample's chain (kernel symbols).
const CAUSES: Array<[string, RegExp]> = [
  ["uprobe breakpoints (install at mmap, remove at exit)", /uprobe|install_breakpoint/],
  [
    "our BPF programs + the kernel's glue",
    /^bpf_prog_|^bpf_trace_run|^trace_call_bpf|^__bpf_trace_|^perf_trace_run_bpf_submit|^__bpf_prog_(enter|exit)|^bpf_ringbuf/,
  ],
  [
    "syscall tracepoint slow path",
    /^(syscall_trace_enter|syscall_exit_work|perf_syscall_enter|perf_syscall_exit|trace_sys_enter|trace_sys_exit)$/,
  ],
];

/** ns per exec by cause, from `perf script` of a system-wide record, for the workload's comms */
function attribute(data: string, comms: Set<string>, n: number): Map<string, number> {
  const out = must(["perf", "script", "-i", data, "-F", "comm,period,ip,sym"]);
  const by = new Map<string, number>([["all", 0]]);
  for (const blk of out.split("\n\n")) {
    const lines = blk
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
    const head = lines[0]?.split(/\s+/);
    if (!head || !comms.has(head[0] as string)) continue;
    const period = Number(head[head.length - 1]) || 0;
    by.set("all", (by.get("all") ?? 0) + period);
    const syms = lines.slice(1).map((l) => (l.split(/\s+/)[1] ?? "").split("+")[0] as string);
    const cause = CAUSES.find(([, rx]) => syms.some((s) => rx.test(s)))?.[0];
    if (cause) by.set(cause, (by.get(cause) ?? 0) + period);
  }
  for (const [k, v] of by) by.set(k, v / n);
  return by;
}

const us = (ns: number) => `${(ns / 1000).toFixed(1)} µs`;

function main(): void {
  if (process.getuid?.() !== 0)
    return void console.log("bench exec-cost: not root. Nothing measured.");
  if (!existsSync(AGENT))
    return void console.log(`bench exec-cost: no ${AGENT}. Nothing measured.`);
  if (!takeMachine("bench-exec-cost")) return;

  const tmp = mkdtempSync(join(tmpdir(), "dpndncy-bench-exec-"));
  let cg: InstanceType<typeof CpuCgroup> | undefined;
  let state = "";
  let running = AGENT;
  const stop = () => {
    if (!state) return;
    sh([running, "stop", "--state-dir", state]);
    rmSync(`${state}.ndjson`, { force: true });
    state = "";
  };
  const start = (v: Variant): number => {
    state = join(tmp, `state-${Date.now()}`);
    running = v.agent ?? AGENT;
    const out = must(
      [v.agent ?? AGENT, "start", "--log", `${state}.ndjson`, "--state-dir", state],
      v.env,
    );
    const pid = Number((JSON.parse(out) as { pid?: number }).pid);
    if (!(pid > 0)) throw new Error(`dpndncy-agent start printed no pid: ${out}`);
    return pid;
  };
  try {
    cg = new CpuCgroup(`dpndncy-bench-exec-${process.pid}`);
    const loop = join(tmp, "exec_loop");
    must(["gcc", "-O2", "-Wall", join(REPO, "bench/agent/exec_loop.c"), "-o", loop]);
    const argv = cg.wrap([loop, String(N)]);
    type Row = { usage: number; user: number; sys: number; agent: number };
    const rows = new Map<string, Row[]>();
    console.log(
      `exec cost: ${N.toLocaleString("en-US")} execs of /bin/true, kernel ${release()}, ${cpus().length} CPUs, ${ROUNDS} interleaved rounds`,
    );
    for (let round = 1; round <= ROUNDS; round++) {
      process.stdout.write(`round ${round}:`);
      // every other round backwards: a drift within a round then favours no variant
      const order = round % 2 ? VARIANTS : [...VARIANTS].reverse();
      for (const v of order) {
        const pid = v.env ? start(v) : 0;
        const a0 = pid ? taskCpuNs(pid) : 0;
        const c0 = cgStat(cg.path);
        must(argv);
        const c1 = cgStat(cg.path);
        const a1 = pid ? taskCpuNs(pid) : 0;
        stop();
        const r: Row = {
          usage: (c1.usage - c0.usage) / N,
          user: (c1.user - c0.user) / N,
          sys: (c1.sys - c0.sys) / N,
          agent: (a1 - a0) / N,
        };
        rows.set(v.name, [...(rows.get(v.name) ?? []), r]);
        process.stdout.write(
          ` ${v.key} ${(r.usage / 1000).toFixed(0)}+${(r.agent / 1000).toFixed(1)}`,
        );
      }
      console.log(" (workload+agent µs/exec)");
    }
    if (ROUNDS > 0) {
      const off = rows.get("off") ?? [];
      console.log(
        `\nCPU per exec, medians over rounds; "added" vs off in the same round [95 % CI]:`,
      );
      console.log(
        `  off: workload ${us(median(off.map((r) => r.usage)))} (user ${us(median(off.map((r) => r.user)))}, sys ${us(median(off.map((r) => r.sys)))})`,
      );
      const added = (xs: Row[], f: (r: Row) => number) => {
        const d = xs.map((r, k) => f(r) - f(off[k] as Row));
        const ci = medianCI(d);
        return `${us(median(d))}${ci ? ` [${(ci[0] / 1000).toFixed(1)}, ${(ci[1] / 1000).toFixed(1)}]` : ""}`;
      };
      for (const v of VARIANTS.slice(1)) {
        const xs = rows.get(v.name) ?? [];
        console.log(
          `  ${v.name}: added total ${added(xs, (r) => r.usage + r.agent)} = workload ${added(xs, (r) => r.usage)} (user ${added(xs, (r) => r.user)}, sys ${added(xs, (r) => r.sys)}) + agent ${us(median(xs.map((r) => r.agent)))}`,
        );
      }
      // variant minus the default agent, same round: what leaving one hook out saves
      const dflt = rows.get("dpndncy");
      if (dflt)
        for (const v of VARIANTS.filter((x) => x.env && x.name !== "dpndncy")) {
          const xs = rows.get(v.name) ?? [];
          const d = xs.map(
            (r, k) => r.usage + r.agent - ((dflt[k] as Row).usage + (dflt[k] as Row).agent),
          );
          const ci = medianCI(d);
          console.log(
            `  ${v.name} vs dpndncy: ${us(median(d))}${ci ? ` [${(ci[0] / 1000).toFixed(1)}, ${(ci[1] / 1000).toFixed(1)}]` : ""} per exec${ci && ci[1] < 0 ? " (saved)" : ci && ci[0] > 0 ? " (costs more)" : " (not shown)"}`,
          );
        }
    }
    if (sh(["sh", "-c", "command -v perf"]).code !== 0) {
      console.log("\nattribution: no perf (apt-get install linux-perf). Skipped.");
      return;
    }
    console.log(
      "\nattribution (one perf-sampled run per variant, cpu-clock 4999 Hz, call chains; bpf_stats on):",
    );
    const comms = new Set(["exec_loop", "true"]);
    let offBy: Map<string, number> | undefined;
    const restore = enableBpfStats();
    try {
      for (const v of VARIANTS) {
        const before = progIds();
        const pid = v.env ? start(v) : 0;
        const p0 = pid ? ourProgs(before) : [];
        const a0 = pid ? taskCpuNs(pid) : 0;
        const data = join(tmp, "perf.data");
        must([
          "perf",
          "record",
          "-q",
          "-e",
          "cpu-clock",
          "-F",
          "4999",
          "-a",
          "-g",
          "-o",
          data,
          "--",
          ...argv,
        ]);
        const a1 = pid ? taskCpuNs(pid) : 0;
        const bpf = pid ? costBetween(p0, ourProgs(before)) : [];
        stop();
        const by = attribute(data, comms, N);
        rmSync(data, { force: true });
        offBy ??= by;
        const parts = CAUSES.map(([c]) => {
          const x = by.get(c) ?? 0;
          return `${c} ${us(x)}${v.env ? ` (${us(x - (offBy?.get(c) ?? 0))} over off)` : ""}`;
        });
        console.log(`  ${v.name}: workload sampled ${us(by.get("all") ?? 0)}; ${parts.join("; ")}`);
        if (v.env) {
          const total = bpf.reduce((s, p) => s + p.ns, 0) / N;
          const top = bpf
            .slice(0, 6)
            .map(
              (p) =>
                `${p.label.split(" ").pop()} ${(p.runs / N).toFixed(1)}×${Math.round(p.ns / p.runs)} ns`,
            )
            .join(", ");
          console.log(
            `    bpf_stats (machine-wide): ${us(total)} per exec (${top}); agent ${us((a1 - a0) / N)}`,
          );
        }
      }
    } finally {
      restore();
    }
  } catch (e) {
    console.log(`\nbench exec-cost: stopped early: ${(e as Error).message}`);
  } finally {
    try {
      stop();
    } catch {}
    cg?.remove();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main();
