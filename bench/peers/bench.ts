// dpndncy next to the mechanisms peers use, in the same run on the same workloads:
//   off        nothing watching
//   dpndncy    dpndncy-agent start (observe)
//   auditd     Debian's auditd with execve and connect syscall rules (-a always,exit)
//   bpftrace   a bpftrace exec/connect tracer printing one line per event to a file
//   bpftrace + getaddrinfo uprobe   the same with a libc getaddrinfo uprobe, as dpndncy has
// Rounds interleave them (off, dpndncy, auditd, bpftrace, ..., off, ...) so the VM's drift hits
// each alike; a ratio is the median over rounds of per-round ratios, with a 95 % interval.
// Besides wall clock, each run's CPU is counted as the scheduler counts it, which the VM's other
// load moves far less: the workload's own (its cgroup's cpu.stat, so hook time spent inside its
// syscalls counts) plus the watcher's (its processes' schedstat, and kauditd's for auditd).
// Never fails (exit 0). Needs root, auditd and bpftrace (bench/run.sh installs them).
import "../resolve-ts.mjs"; // first: the dynamic imports below resolve through it
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const { runningAgents } = await import("../../test/support/kernel/lock.js");
const { formatRatio, median, pairedRatio } = await import("../lib/stats.js");
const { CpuCgroup, kthreadPids, taskCpuNs } = await import("../lib/cpu.js");

const { takeMachine } = await import("../lib/machine.js");

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const AGENT = process.env.DPNDNCY_AGENT ?? join(REPO, "build/dpndncy-agent");
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const N_EXEC = Number(process.env.BENCH_EXECS ?? 2000);
const N_CONNECT = Number(process.env.BENCH_CONNECTS ?? 20000);

function sh(argv: string[]): { code: number | null; out: string; err: string } {
  const [f, ...a] = argv;
  const r = spawnSync(f as string, a, { encoding: "utf8", timeout: 600_000, maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout ?? "", err: r.stderr ?? String(r.error ?? "") };
}
function must(argv: string[]): string {
  const r = sh(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.err.trim()}`);
  return r.out;
}
const which = (cmd: string) => sh(["sh", "-c", `command -v ${cmd}`]).code === 0;

interface Watcher {
  name: string;
  start(): void;
  stop(): void;
  /** the user-space processes doing the watching (their CPU counts against the watcher) */
  pids(): number[];
}

function waitFor(pred: () => boolean, ms: number, what: string): void {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    spawnSync("sleep", ["0.1"]);
  }
}

/** Gone or a zombie: the benchmark blocks in spawnSync, so node's own exit handling lags. */
function ended(p: ChildProcess | undefined): boolean {
  if (!p?.pid) return true;
  try {
    const st = readFileSync(`/proc/${p.pid}/stat`, "utf8");
    return st.slice(st.lastIndexOf(")") + 2, st.lastIndexOf(")") + 3) === "Z";
  } catch {
    return true;
  }
}

function main(): void {
  if (process.getuid?.() !== 0) {
    console.log("bench peers: not root. Nothing measured.");
    return;
  }
  const missing = ["auditd", "auditctl", "bpftrace"].filter((c) => !which(c));
  if (!existsSync(AGENT)) missing.push(AGENT);
  if (missing.length > 0) {
    console.log(
      `bench peers: missing ${missing.join(", ")} (bench/run.sh installs them). Nothing measured.`,
    );
    return;
  }
  if (!takeMachine("bench-peers")) return;
  if (sh(["pgrep", "-x", "auditd"]).code === 0) {
    console.log(
      "bench peers: an auditd is already running here; not touching it. Nothing measured.",
    );
    return;
  }

  const tmp = mkdtempSync(join(tmpdir(), "dpndncy-bench-peers-"));
  let active: Watcher | undefined;
  let cg: InstanceType<typeof CpuCgroup> | undefined;
  try {
    cg = new CpuCgroup(`dpndncy-bench-peers-${process.pid}`);
    const bin = (name: string) => {
      const out = join(tmp, name);
      must(["gcc", "-O2", "-Wall", join(REPO, "bench/agent", `${name}.c`), "-o", out]);
      return out;
    };
    const workloads = [
      {
        name: `${N_EXEC.toLocaleString("en-US")} execs of /bin/true`,
        argv: [bin("exec_loop"), String(N_EXEC)],
        n: N_EXEC,
        unit: "exec",
      },
      {
        name: `${N_CONNECT.toLocaleString("en-US")} loopback TCP connects`,
        argv: [bin("connect_loop"), String(N_CONNECT)],
        n: N_CONNECT,
        unit: "connect",
      },
    ];

    let agentState = "";
    const dpndncy: Watcher = {
      name: "dpndncy (observe)",
      start() {
        agentState = join(tmp, `state-${Date.now()}`);
        must([AGENT, "start", "--log", `${agentState}.ndjson`, "--state-dir", agentState]);
      },
      stop() {
        sh([AGENT, "stop", "--state-dir", agentState]);
        rmSync(`${agentState}.ndjson`, { force: true });
      },
      // the kernel-tests lock is held: the only agent running is ours
      pids: () => runningAgents().map((l) => Number(l.split(" ")[0])),
    };
    // auditd writes to its own log in the temp dir (a config of its own, never /etc's rules)
    const auditDir = join(tmp, "audit");
    const auditConf = join(auditDir, "auditd.conf");
    must(["mkdir", "-p", auditDir]);
    must([
      "sh",
      "-c",
      `printf 'log_file = ${auditDir}/audit.log\\nlog_format = ENRICHED\\nflush = INCREMENTAL_ASYNC\\nfreq = 50\\nmax_log_file = 1024\\nmax_log_file_action = ROTATE\\nspace_left = 10\\nadmin_space_left = 5\\ndisk_full_action = SUSPEND\\ndisk_error_action = SUSPEND\\n' > ${auditConf}; chmod 0640 ${auditConf}`,
    ]);
    let auditProc: ChildProcess | undefined;
    const auditd: Watcher = {
      name: "auditd (execve+connect rules)",
      start() {
        auditProc = spawn("auditd", ["-n", "-c", auditDir], { stdio: "ignore" });
        waitFor(
          () => sh(["auditctl", "-s"]).out.includes(`pid ${auditProc?.pid}`),
          10_000,
          "auditd",
        );
        must([
          "auditctl",
          "-a",
          "always,exit",
          "-F",
          "arch=b64",
          "-S",
          "execve",
          "-S",
          "connect",
          "-k",
          "dpndncy-bench",
        ]);
      },
      stop() {
        sh(["auditctl", "-D", "-k", "dpndncy-bench"]);
        auditProc?.kill("SIGTERM");
        waitFor(() => ended(auditProc), 10_000, "auditd to stop");
        rmSync(join(auditDir, "audit.log"), { force: true });
      },
      pids: () => (auditProc?.pid ? [auditProc.pid] : []),
    };
    const btScript = [
      'tracepoint:sched:sched_process_exec { printf("exec %d %d %s %s\\n", pid, curtask->real_parent->tgid, comm, str(args->filename)); }',
      'tracepoint:syscalls:sys_enter_connect { printf("connect %d %s %d\\n", pid, comm, args->fd); }',
    ].join("\n");
    // The same tracer with what dpndncy's DNS from libc costs every process that maps libc: a
    // getaddrinfo uprobe (bench/exec-cost: its breakpoints are the largest part of what an exec pays us)
    const libc = /\s(\/\S*\/libc\.so\.6)$/m.exec(readFileSync("/proc/self/maps", "utf8"))?.[1];
    const btGaiScript = libc
      ? `${btScript}\nuprobe:${libc}:getaddrinfo { printf("dns %d %s %s\\n", pid, comm, str(arg0)); }`
      : undefined;
    const makeBpftrace = (name: string, script: string): Watcher => {
      let bt: ChildProcess | undefined;
      let mountedTracefs = false;
      let btOut = "";
      return {
        name,
        start() {
          btOut = join(tmp, `bt-${Date.now()}.txt`);
          // bpftrace finds tracepoints through tracefs, which a fresh machine has not mounted
          if (
            !readFileSync("/proc/self/mounts", "utf8").includes(" /sys/kernel/tracing tracefs ")
          ) {
            must(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"]);
            mountedTracefs = true;
          }
          const errFd = openSync(`${btOut}.err`, "w");
          bt = spawn("bpftrace", ["-o", btOut, "-e", script], {
            stdio: ["ignore", "ignore", errFd],
          });
          closeSync(errFd);
          // bpftrace prints "Attaching N probes..." into its output file once armed
          try {
            waitFor(
              () => existsSync(btOut) && readFileSync(btOut, "utf8").includes("Attaching"),
              90_000,
              "bpftrace to attach",
            );
          } catch (e) {
            throw new Error(
              `${(e as Error).message}: ${readFileSync(`${btOut}.err`, "utf8").trim()}`,
            );
          }
        },
        stop() {
          bt?.kill("SIGINT");
          waitFor(() => ended(bt), 20_000, "bpftrace to stop");
          if (mountedTracefs) sh(["umount", "/sys/kernel/tracing"]);
          mountedTracefs = false;
          rmSync(btOut, { force: true });
        },
        pids: () => (bt?.pid ? [bt.pid] : []),
      };
    };
    const bpftrace = makeBpftrace("bpftrace (exec+connect tracer)", btScript);
    const bpftraceGai = btGaiScript
      ? makeBpftrace("bpftrace + getaddrinfo uprobe", btGaiScript)
      : undefined;
    if (!bpftraceGai) console.log("bench peers: no libc.so.6 mapped here; no uprobe peer");
    const watchers: Array<Watcher | undefined> = [undefined, dpndncy, auditd, bpftrace];
    if (bpftraceGai) watchers.push(bpftraceGai);
    const names = watchers.map((w) => w?.name ?? "off");
    const t = new Map<string, number[]>(); // `${watcher}|${workload}` -> ns per round
    const cpu = new Map<string, number[]>(); // the same -> CPU ns (workload + watcher) per round
    const kauditd = kthreadPids("kauditd");
    const watcherNs = (w: Watcher | undefined) =>
      w ? [...w.pids(), ...kauditd].reduce((a, p) => a + taskCpuNs(p), 0) : 0;
    console.log(
      `dpndncy vs peers: kernel ${release()}, ${cpus().length} CPUs, ${ROUNDS} interleaved rounds`,
    );
    for (let round = 1; round <= ROUNDS; round++) {
      process.stdout.write(`round ${round}:`);
      for (const [i, w] of watchers.entries()) {
        if (w) {
          w.start();
          active = w;
        }
        for (const wl of workloads) {
          const c0 = cg.usageNs() + watcherNs(w);
          const m = /ns (\d+)/.exec(must(cg.wrap(wl.argv)));
          const c1 = cg.usageNs() + watcherNs(w);
          const key = `${names[i]}|${wl.name}`;
          t.set(key, [...(t.get(key) ?? []), Number(m?.[1])]);
          cpu.set(key, [...(cpu.get(key) ?? []), c1 - c0]);
        }
        if (w) {
          w.stop();
          active = undefined;
        }
        process.stdout.write(` ${w ? w.name.replace(/ \(.*\)$/, "") : "off"};`);
      }
      console.log("");
    }
    console.log("");
    for (const wl of workloads) {
      const off = t.get(`off|${wl.name}`) ?? [];
      console.log(
        `${wl.name} (median off: ${(median(off) / wl.n / 1000).toFixed(2)} µs/${wl.unit})`,
      );
      const ours = t.get(`${dpndncy.name}|${wl.name}`) ?? [];
      for (const name of names.slice(1)) {
        const xs = t.get(`${name}|${wl.name}`) ?? [];
        const vsOff = pairedRatio(off, xs);
        const added = ((vsOff.median - 1) * median(off)) / wl.n / 1000;
        console.log(
          `  ${name.padEnd(32)} vs off: ${formatRatio(vsOff)}; ${added.toFixed(2)} µs/${wl.unit} added`,
        );
        if (name !== dpndncy.name) {
          const vsUs = pairedRatio(ours, xs);
          const cheaper = vsUs.verdict === "slower"; // the peer is slower than dpndncy
          console.log(
            `  ${"".padEnd(32)} vs dpndncy: ${formatRatio(vsUs)} -> dpndncy ${cheaper ? `is cheaper: the peer costs ${vsUs.median.toFixed(2)}x as much` : vsUs.verdict === "faster" ? "is MORE EXPENSIVE" : "not shown cheaper"}`,
          );
        }
      }
    }
    console.log("\nCPU (workload + watcher, as the scheduler counts it), per operation:");
    for (const wl of workloads) {
      const per = (name: string) => (cpu.get(`${name}|${wl.name}`) ?? []).map((x) => x / wl.n);
      const off = per("off");
      console.log(`${wl.name} (median off: ${(median(off) / 1000).toFixed(2)} µs CPU/${wl.unit})`);
      const ours = per(dpndncy.name);
      for (const name of names.slice(1)) {
        const xs = per(name);
        const added = median(xs.map((x, k) => x - (off[k] as number))) / 1000;
        const line = `  ${name.padEnd(32)} vs off: ${formatRatio(pairedRatio(off, xs))}; ${added.toFixed(2)} µs CPU/${wl.unit} added`;
        console.log(line);
        if (name !== dpndncy.name) {
          const vsUs = pairedRatio(ours, xs);
          const verdict =
            vsUs.verdict === "slower"
              ? `is cheaper: the peer costs ${vsUs.median.toFixed(2)}x as much`
              : vsUs.verdict === "faster"
                ? "is MORE EXPENSIVE"
                : "not shown cheaper";
          console.log(`  ${"".padEnd(32)} vs dpndncy: ${formatRatio(vsUs)} -> dpndncy ${verdict}`);
        }
      }
    }
  } catch (e) {
    console.log(`\nbench peers: stopped early: ${(e as Error).message}`);
  } finally {
    try {
      active?.stop();
    } catch {}
    sh(["auditctl", "-D", "-k", "dpndncy-bench"]);
    cg?.remove();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main();
