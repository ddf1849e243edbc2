// The agent binary as a user meets it: --version, --help, unknown options, `probe`, and how it
// is built (static, small).
import { readFileSync, statSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { agentCli, agentRun, parseJson } from "../support/kernel/agent.js";
import { AGENT, REPO } from "../support/kernel/env.js";
import { byKind } from "../support/kernel/log.js";
import { run } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";
import { leaksSettled, snapshot } from "../support/kernel/sysstate.js";

const SUBCOMMANDS = ["probe", "run", "start", "stop", "status"];
const pkgVersion = (
  JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }
).version;

interface Probe {
  version: string;
  commit: string;
  kernel: string;
  btf: boolean;
  attach: Record<string, string>;
  hooks: {
    file: {
      attach: string;
      candidates: string[];
      available: Record<string, boolean>;
      unavailable: Record<string, string>;
    };
    [hook: string]: { attach: string; unavailable?: Record<string, string> } & Record<
      string,
      unknown
    >;
  };
}

describeKernel("agent CLI", () => {
  it("--version prints the package version and the commit it was built from, on every subcommand", async () => {
    for (const args of [["--version"], ...SUBCOMMANDS.map((s) => [s, "--version"])]) {
      const r = await agentCli(args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(pkgVersion);
      const commit = /\b([0-9a-f]{7,40})\b/.exec(r.stdout)?.[1];
      expect(commit, `a commit in: ${r.stdout}`).toBeDefined();
      const known = await run(["git", "-C", REPO, "cat-file", "-e", `${commit}^{commit}`]);
      expect(known.code, `${commit} is a commit of this repository`).toBe(0);
    }
  });

  it("--help prints usage for the tool and each subcommand, exit 0", async () => {
    const top = await agentCli(["--help"]);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/usage/i);
    for (const s of SUBCOMMANDS) expect(top.stdout).toContain(s);
    for (const s of SUBCOMMANDS) {
      const r = await agentCli([s, "--help"]);
      expect(r.code, `${s} --help: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/usage/i);
      expect(r.stdout).toContain(s);
    }
    const run1 = await agentCli(["run", "--help"]);
    for (const opt of ["--log", "--mode", "--config"]) expect(run1.stdout).toContain(opt);
    const start = await agentCli(["start", "--help"]);
    expect(start.stdout).toContain("--state-dir");
  });

  it("unknown options and subcommands: non-zero exit, a one-line error naming them, nothing attached", async () => {
    const before = await snapshot();
    const cases = [
      ["--frobnicate"],
      ["frobnicate"],
      ...SUBCOMMANDS.map((s) => [s, "--frobnicate"]),
      ["run", "--log", "/tmp/dpndncy-kt-never.ndjson", "--frobnicate", "--", "/bin/true"],
    ];
    for (const args of cases) {
      const r = await agentCli(args);
      const what = args.join(" ");
      expect(r.code, what).not.toBe(0);
      expect(r.code, what).not.toBeNull();
      const err = r.stderr.trim();
      expect(err.split("\n"), `${what}: one line on stderr`).toHaveLength(1);
      expect(err, what).toContain("frobnicate");
    }
    expect(await leaksSettled(before)).toEqual([]);
  });

  it("probe: kernel release, BTF, and per hook the attach point chosen with reasons for every better one", async () => {
    const before = await snapshot();
    const r = await agentCli(["probe"]);
    expect(r.code, r.stderr).toBe(0);
    const p = parseJson<Probe>(r.stdout, "probe output");
    expect(p.kernel).toBe(release());
    expect(p.btf).toBe(true);
    expect(p.version).toBe(pkgVersion);
    for (const hook of ["exec", "connect", "file", "dns"]) {
      expect(p.attach[hook], `attach.${hook}`).toMatch(/\S/);
      expect(p.attach[hook]).not.toBe("none");
    }
    expect(p.attach.exec).toBe("tracepoint/sched/sched_process_exec");
    // file: the chosen point is the first available candidate; each better one says why not
    const f = p.hooks.file;
    expect(f.candidates.slice(0, 3)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^lsm/),
        expect.stringMatching(/^fentry/),
        expect.stringMatching(/^kprobe/),
      ]),
    );
    const chosen = f.candidates.indexOf(f.attach);
    expect(chosen).toBeGreaterThanOrEqual(0);
    expect(p.attach.file).toBe(f.attach);
    for (const better of f.candidates.slice(0, chosen)) {
      expect(f.available[better], better).toBe(false);
      expect(f.unavailable[better], `why ${better} is unavailable`).toMatch(/\S{3}/);
    }
    expect(f.available[f.attach]).toBe(true);
    // On a kernel without CONFIG_KPROBES (our VMs, DESIGN §6) kprobe must be reported unavailable.
    const kprobesOff = !statExists("/sys/kernel/debug/kprobes") && !kallsymsHas("register_kprobe");
    if (kprobesOff) {
      const kp = f.candidates.find((c) => c.startsWith("kprobe")) as string;
      expect(f.available[kp]).toBe(false);
      expect(f.attach).toMatch(/^tracepoint\/syscalls\/sys_(enter|exit)_openat/);
    }
    // probe only looks: it attaches nothing and leaves nothing mounted
    expect(await leaksSettled(before)).toEqual([]);
    // and what it predicts is what an agent then attaches
    const r2 = await agentRun({ cmd: ["/bin/true"] });
    const start = byKind.agent(r2.log.events).find((e) => e.event === "start");
    for (const hook of ["exec", "connect", "file", "dns"]) {
      expect(start?.attach?.[hook], `start record attach.${hook}`).toBe(p.attach[hook]);
    }
    // the TCP state change: the BTF tracepoint (this kernel has its BTF), as the agent then uses
    // it; with the classic one forced, probe says why the BTF one is not used
    const sc = p.hooks.connect?.state_change;
    expect(sc).toBe("tp_btf/inet_sock_set_state");
    expect(String(start?.attach?.connect_result)).toMatch(new RegExp(`\\+${sc}$`));
    const forced = parseJson<Probe>(
      (await agentCli(["probe"], { ...process.env, DPNDNCY_FORCE_TCP_STATE_TP: "1" })).stdout,
      "probe output (DPNDNCY_FORCE_TCP_STATE_TP=1)",
    );
    expect(forced.hooks.connect?.state_change).toBe("tracepoint/sock/inet_sock_set_state");
    expect(forced.hooks.connect?.unavailable?.["tp_btf/inet_sock_set_state"]).toMatch(
      /DPNDNCY_FORCE_TCP_STATE_TP/,
    );
  });

  it("build/dpndncy-agent is a static executable under 3 MB", async () => {
    const f = await run(["file", "-L", AGENT]);
    expect(f.stdout).toMatch(/statically linked|static-pie linked/);
    const l = await run(["ldd", AGENT]);
    expect(`${l.stdout}${l.stderr}`).toMatch(/not a dynamic executable|statically linked/);
    const size = statSync(AGENT).size;
    console.log(`dpndncy-agent: ${size} bytes`);
    expect(size).toBeLessThan(3_000_000);
  });
});

function statExists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

function kallsymsHas(sym: string): boolean {
  try {
    return new RegExp(` ${sym}$`, "m").test(readFileSync("/proc/kallsyms", "utf8"));
  } catch {
    return false;
  }
}
