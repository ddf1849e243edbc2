// Two agent builds side by side: the before/after of a hot-path change, in one run.
//   BENCH_AGENT_A=/path/to/before BENCH_AGENT_B=/path/to/after node bench/compare/bench.ts
// (B defaults to build/dpndncy-agent.) Each round starts A, then B (the order alternates from
// round to round, so a drift of the VM hits both alike) and runs the same workloads under
// each: loopback TCP connects, execs of /bin/true in a step, non-sensitive opens. What is
// compared is the workload's CPU as the scheduler counts it (its cgroup's cpu.stat: the hooks
// run inside its syscalls, so their cost counts, and a process waiting for the CPU accrues
// none), per operation; plus our programs' in-kernel time from bpf_stats. The ratio B/A is the
// median of per-round ratios with a 95 % interval, reported as a difference only when the
// interval leaves out 1. bpf_stats is off in those rounds (its clock reads would be counted as
// the agent's CPU) and on for one more round of each, for the in-kernel figures, which noise does
// not move. Never fails (exit 0).
import "../resolve-ts.mjs"; // first: the dynamic imports below resolve through it
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const { formatRatio, median, pairedRatio } = await import("../lib/stats.js");
const { CpuCgroup } = await import("../lib/cpu.js");
const { costBetween, enableBpfStats, ourProgs, progIds } = await import("../lib/bpfstats.js");

const { envCount, takeMachine } = await import("../lib/machine.js");

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const A = process.env.BENCH_AGENT_A;
const B = process.env.BENCH_AGENT_B ?? join(REPO, "build/dpndncy-agent");
const ROUNDS = envCount("BENCH_ROUNDS", 10);
const N = {
  connect: envCount("BENCH_CONNECTS", 50000),
  exec: envCount("BENCH_EXECS", 2000),
  open: envCount("BENCH_OPENS", 500000),
};

function must(argv: string[], env?: NodeJS.ProcessEnv): string {
  const [f, ...a] = argv;
  const r = spawnSync(f as string, a, {
    encoding: "utf8",
    timeout: 600_000,
    env: env ?? process.env,
  });
  if (r.status !== 0)
    throw new Error(`${argv.join(" ")} failed (${r.status}): ${(r.stderr ?? "").trim()}`);
  return r.stdout ?? "";
}

interface Workload {
  name: string;
  n: number;
  unit: string;
  argv: string[];
  env?: NodeJS.ProcessEnv;
}

interface Sample {
  cpuNsPerOp: number;
  bpfNsPerOp: number;
}

/** One agent, started, every workload once in its own cgroup, stopped. */
function runUnder(agent: string, tmp: string, works: Workload[]): Sample[] {
  const state = join(tmp, "state");
  const before = progIds();
  must([agent, "start", "--state-dir", state, "--log", join(tmp, "log.ndjson")]);
  const out: Sample[] = [];
  try {
    for (const w of works) {
      const cg = new CpuCgroup(`dpndncy-bench-compare-${process.pid}`);
      try {
        const s0 = ourProgs(before);
        const u0 = cg.usageNs();
        must(cg.wrap(w.argv), w.env);
        const u1 = cg.usageNs();
        const s1 = ourProgs(before);
        const bpf = costBetween(s0, s1).reduce((t, p) => t + p.ns, 0);
        out.push({ cpuNsPerOp: (u1 - u0) / w.n, bpfNsPerOp: bpf / w.n });
      } finally {
        cg.remove();
      }
    }
  } finally {
    spawnSync(agent, ["stop", "--state-dir", state]);
    rmSync(join(tmp, "log.ndjson"), { force: true });
  }
  return out;
}

function main(): void {
  if (!A) {
    console.log(
      "bench compare: set BENCH_AGENT_A (the build before) and optionally BENCH_AGENT_B; nothing measured.",
    );
    return;
  }
  if (process.getuid?.() !== 0) {
    console.log("bench compare: not root; the agent needs root to load BPF. Nothing measured.");
    return;
  }
  for (const p of [A, B])
    if (!existsSync(p)) {
      console.log(`bench compare: ${p} not found. Nothing measured.`);
      return;
    }
  if (!takeMachine("bench-compare")) return;

  const tmp = mkdtempSync(join(tmpdir(), "dpndncy-bench-compare-"));
  try {
    const bin = (name: string) => {
      const o = join(tmp, name);
      must(["gcc", "-O2", "-Wall", join(REPO, "bench/agent", `${name}.c`), "-o", o]);
      return o;
    };
    const plain = join(tmp, "plain.txt");
    writeFileSync(plain, "bench\n");
    const works: Workload[] = [
      {
        name: `${N.connect.toLocaleString("en-US")} loopback TCP connects`,
        n: N.connect,
        unit: "connect",
        argv: [
          "unshare",
          "-n",
          "sh",
          "-c",
          'ip link set lo up && exec "$@"',
          "netns",
          bin("connect_loop"),
          String(N.connect),
        ],
      },
      {
        name: `${N.exec.toLocaleString("en-US")} execs of /bin/true in a step`,
        n: N.exec,
        unit: "exec",
        argv: [bin("exec_loop"), String(N.exec)],
        env: { ...process.env, DPNDNCY_STEP: "bench-step" },
      },
      {
        name: `${N.open.toLocaleString("en-US")} non-sensitive opens`,
        n: N.open,
        unit: "open",
        argv: [bin("open_loop"), String(N.open), plain],
      },
    ];
    console.log(
      `dpndncy compare: kernel ${release()}, ${cpus().length} CPUs, ${ROUNDS} rounds (A, B alternating first)`,
    );
    console.log(`  A ${A}`);
    console.log(`  B ${B}`);
    const a: Sample[][] = [];
    const b: Sample[][] = [];
    for (let r = 0; r < ROUNDS; r++) {
      if (r % 2 === 0) {
        a.push(runUnder(A, tmp, works));
        b.push(runUnder(B, tmp, works));
      } else {
        b.push(runUnder(B, tmp, works));
        a.push(runUnder(A, tmp, works));
      }
    }
    const restoreStats = enableBpfStats();
    let sa: Sample[];
    let sb: Sample[];
    try {
      sa = runUnder(A, tmp, works);
      sb = runUnder(B, tmp, works);
    } finally {
      restoreStats();
    }
    console.log("");
    works.forEach((w, i) => {
      const ca = a.map((s) => (s[i] as Sample).cpuNsPerOp);
      const cb = b.map((s) => (s[i] as Sample).cpuNsPerOp);
      console.log(`${w.name}:`);
      console.log(
        `    workload CPU per ${w.unit}: A ${Math.round(median(ca))} ns, B ${Math.round(median(cb))} ns (medians); B/A ${formatRatio(pairedRatio(ca, cb))}`,
      );
      console.log(
        `    our BPF per ${w.unit} (bpf_stats, one round each): A ${Math.round((sa[i] as Sample).bpfNsPerOp)} ns, B ${Math.round((sb[i] as Sample).bpfNsPerOp)} ns`,
      );
    });
  } catch (e) {
    console.log(`\nbench compare: stopped early: ${(e as Error).message}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main();
