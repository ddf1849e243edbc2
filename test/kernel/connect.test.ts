// connect events: TCP connect and unconnected UDP sendto over loopback (IPv4, IPv6, IPv4-mapped)
// and to a test host in another network namespace over a veth pair. Workloads always run in a
// namespace of their own; nothing leaves the machine.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { expect, it } from "vitest";
import { agentCli, agentRun, agentStart, expectRunOk } from "../support/kernel/agent.js";
import { compileC } from "../support/kernel/cbuild.js";
import { FIXTURES, onCleanup, PYTHON } from "../support/kernel/env.js";
import { byKind, type ConnectEv, readLog } from "../support/kernel/log.js";
import { Netns } from "../support/kernel/netns.js";
import { startServers } from "../support/kernel/servers.js";
import { describeKernel } from "../support/kernel/suite.js";
import { linkedProgNames } from "../support/kernel/sysstate.js";

const ECONNREFUSED = 111;
const ENETUNREACH = 101;

interface Want {
  proto: "tcp" | "udp";
  family: "inet" | "inet6" | "inet-or-inet6";
  addr: string;
  port: number;
  mapped: boolean;
  /** null: unknown by design (an unconnected UDP sendto has no connect result). */
  result: number | null;
}

/** The workload's connect events must be exactly `want` (any order, no duplicates, no extras). */
function expectConnects(got: ConnectEv[], want: Want[], pid: number): void {
  const key = (e: { proto: string; addr: string; port: number; mapped?: boolean }) =>
    `${e.proto} ${e.addr} ${e.port}${e.mapped ? " mapped" : ""}`;
  expect(got.map(key).sort(), "connect events of the workload").toEqual(want.map(key).sort());
  for (const w of want) {
    const e = got.find((g) => key(g) === key(w)) as ConnectEv;
    expect(e.pid).toBe(pid);
    expect(e.uid).toBe(0);
    if (w.family === "inet-or-inet6") expect(["inet", "inet6"]).toContain(e.family);
    else expect(e.family, key(w)).toBe(w.family);
    expect(e.mapped ?? false, key(w)).toBe(w.mapped);
    expect(e.result, `result of ${key(w)}`).toBe(w.result);
  }
}

describeKernel("connect", () => {
  it("loopback TCP connect and UDP sendto: IPv4, IPv6, IPv4-mapped reported as IPv4 with mapped: true", async () => {
    const ns = await Netns.create();
    const p = await startServers(ns, [
      "tcp:127.0.0.1:0",
      "tcp:[::1]:0",
      "udp:127.0.0.1:0",
      "udp:127.0.0.1:0#b",
      "udp:[::1]:0",
      "udp:127.0.0.1:0#c",
      "tcp:127.0.0.1:0#nb",
    ]);
    // two UDP servers on IPv4 so the mapped sendto goes to a destination of its own
    const tcp4 = p["tcp:127.0.0.1:0"] as number;
    const tcp6 = p["tcp:[::1]:0"] as number;
    const udp4 = p["udp:127.0.0.1:0"] as number;
    const udp4b = p["udp:127.0.0.1:0#b"] as number;
    const udp6 = p["udp:[::1]:0"] as number;
    const udp4c = p["udp:127.0.0.1:0#c"] as number;
    const tcp4nb = p["tcp:127.0.0.1:0#nb"] as number;
    const ops = [
      `tcp:127.0.0.1:${tcp4}`,
      `tcp:[::1]:${tcp6}`,
      `tcp:[::ffff:127.0.0.1]:${tcp4}`,
      `udp2:127.0.0.1:${udp4}`, // two datagrams, one destination: one event
      `udp:[::1]:${udp6}`,
      `udp:[::ffff:127.0.0.1]:${udp4b}`,
      `udpc:127.0.0.1:${udp4c}`, // connect()ed UDP socket: the connect is the event
      `tcpnb:127.0.0.1:${tcp4nb}`, // non-blocking: EINPROGRESS is not the outcome
      "tcpfail:127.0.0.1:1",
    ];
    const r = await agentRun({ cmd: ns.exec(PYTHON, join(FIXTURES, "netclient.py"), ...ops) });
    expectRunOk(r);
    expect(r.res.stdout).toContain(`ERR ${ECONNREFUSED} ECONNREFUSED tcpfail:127.0.0.1:1`);
    expectConnects(
      byKind.connect(r.workload),
      [
        { proto: "tcp", family: "inet", addr: "127.0.0.1", port: tcp4, mapped: false, result: 0 },
        { proto: "tcp", family: "inet6", addr: "::1", port: tcp6, mapped: false, result: 0 },
        {
          proto: "tcp",
          family: "inet-or-inet6",
          addr: "127.0.0.1",
          port: tcp4,
          mapped: true,
          result: 0,
        },
        {
          proto: "udp",
          family: "inet",
          addr: "127.0.0.1",
          port: udp4,
          mapped: false,
          result: null,
        },
        {
          proto: "udp",
          family: "inet6",
          addr: "::1",
          port: udp6,
          mapped: false,
          result: null,
        },
        {
          proto: "udp",
          family: "inet-or-inet6",
          addr: "127.0.0.1",
          port: udp4b,
          mapped: true,
          result: null,
        },
        {
          proto: "udp",
          family: "inet",
          addr: "127.0.0.1",
          port: udp4c,
          mapped: false,
          result: 0,
        },
        {
          proto: "tcp",
          family: "inet",
          addr: "127.0.0.1",
          port: tcp4nb,
          mapped: false,
          result: 0,
        },
        {
          proto: "tcp",
          family: "inet",
          addr: "127.0.0.1",
          port: 1,
          mapped: false,
          result: -ECONNREFUSED,
        },
      ],
      r.rootPid as number,
    );
    for (const e of byKind.connect(r.workload)) expect(e.comm).toBe("python3");
  });

  it.each([
    ["the exit on the CPU of the cgroup program (the per-CPU mark)", {}],
    [
      "every exit finding its socket by the fd (the fallback for a thread that moved CPUs)",
      { DPNDNCY_TEST_CONNECT_EXIT_BY_FD: "1" },
    ],
  ])(
    "a test host 192.0.2.10 / 2001:db8::10 in another namespace over veth; refused, unreachable and connected-UDP results: %s",
    async (_how, env) => {
      const work = await Netns.create();
      const host = await Netns.create();
      await work.vethTo(
        host,
        ["192.0.2.1/24", "2001:db8::1/64"],
        ["192.0.2.10/24", "2001:db8::10/64"],
      );
      const p = await startServers(host, [
        "tcp:192.0.2.10:0",
        "tcp:[2001:db8::10]:0",
        "udp:192.0.2.10:0",
        "udp:192.0.2.10:0#c",
      ]);
      const t4 = p["tcp:192.0.2.10:0"] as number;
      const t6 = p["tcp:[2001:db8::10]:0"] as number;
      const u4 = p["udp:192.0.2.10:0"] as number;
      const u4c = p["udp:192.0.2.10:0#c"] as number;
      const ops = [
        `tcp:192.0.2.10:${t4}`,
        `tcp:[2001:db8::10]:${t6}`,
        `udp:192.0.2.10:${u4}`,
        `udpc:192.0.2.10:${u4c}`, // connected UDP: its result comes from the exit alone
        "tcpfail:192.0.2.10:1", // RST from the test host
        "tcpfail:198.51.100.7:80", // no route in the workload namespace: fails before any packet
      ];
      const r = await agentRun({
        cmd: work.exec(PYTHON, join(FIXTURES, "netclient.py"), ...ops),
        env: { ...process.env, ...env },
      });
      expectRunOk(r);
      expect(r.res.stdout).toContain(`ERR ${ENETUNREACH} ENETUNREACH tcpfail:198.51.100.7:80`);
      expectConnects(
        byKind.connect(r.workload),
        [
          { proto: "tcp", family: "inet", addr: "192.0.2.10", port: t4, mapped: false, result: 0 },
          {
            proto: "tcp",
            family: "inet6",
            addr: "2001:db8::10",
            port: t6,
            mapped: false,
            result: 0,
          },
          {
            proto: "udp",
            family: "inet",
            addr: "192.0.2.10",
            port: u4,
            mapped: false,
            result: null,
          },
          { proto: "udp", family: "inet", addr: "192.0.2.10", port: u4c, mapped: false, result: 0 },
          {
            proto: "tcp",
            family: "inet",
            addr: "192.0.2.10",
            port: 1,
            mapped: false,
            result: -ECONNREFUSED,
          },
          {
            proto: "tcp",
            family: "inet",
            addr: "198.51.100.7",
            port: 80,
            mapped: false,
            result: -ENETUNREACH,
          },
        ],
        r.rootPid as number,
      );
    },
  );

  it("non-blocking connects get their outcome from the state change: the BTF tracepoint where it loads, the classic one with DPNDNCY_FORCE_TCP_STATE_TP=1", async () => {
    const work = await Netns.create();
    const host = await Netns.create();
    await work.vethTo(host, ["192.0.2.1/24"], ["192.0.2.10/24"]);
    const p = await startServers(host, ["tcp:192.0.2.10:0"]);
    const t4 = p["tcp:192.0.2.10:0"] as number;
    for (const [env, hook] of [
      [{}, "tp_btf/inet_sock_set_state"],
      [{ DPNDNCY_FORCE_TCP_STATE_TP: "1" }, "tracepoint/sock/inet_sock_set_state"],
    ] as const) {
      // EINPROGRESS from the syscall; the outcome comes with the SYN-ACK, or the test host's RST
      const r = await agentRun({
        cmd: work.exec(
          PYTHON,
          join(FIXTURES, "netclient.py"),
          `tcpnb:192.0.2.10:${t4}`,
          "tcpnbfail:192.0.2.10:1",
        ),
        env: { ...process.env, ...env },
      });
      expectRunOk(r);
      expect(r.res.stdout).toContain(`ERR ${ECONNREFUSED}`);
      const start = byKind.agent(r.log.events).find((e) => e.event === "start");
      expect(start?.attach?.connect_result).toBe(`tracepoint/syscalls/sys_exit_connect+${hook}`);
      expectConnects(
        byKind.connect(r.workload),
        [
          { proto: "tcp", family: "inet", addr: "192.0.2.10", port: t4, mapped: false, result: 0 },
          {
            proto: "tcp",
            family: "inet",
            addr: "192.0.2.10",
            port: 1,
            mapped: false,
            result: -ECONNREFUSED,
          },
        ],
        r.rootPid as number,
      );
    }
  });

  it("a TCP connect still in SYN_SENT when the agent stops is flushed then, marked pending: true with no result", async () => {
    const ns = await Netns.create();
    const host = await Netns.create();
    const dev = await ns.vethTo(host, ["192.0.2.1/24"], ["192.0.2.10/24"]);
    // a neighbour entry for a MAC address nobody has: the SYN goes out and nothing ever answers
    await ns.ip(
      "neigh",
      "add",
      "192.0.2.99",
      "lladdr",
      "02:00:00:00:00:99",
      "dev",
      dev.mine,
      "nud",
      "permanent",
    );
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    const [cmd, ...args] = ns.exec(
      PYTHON,
      "-c",
      "import socket,sys,time\ns=socket.socket();s.setblocking(False)\ntry: s.connect(('192.0.2.99',80))\nexcept BlockingIOError: pass\nprint('SENT',flush=True);time.sleep(30)",
    );
    const child = spawn(cmd as string, args, { stdio: ["ignore", "pipe", "inherit"] });
    onCleanup(() => {
      child.kill("SIGKILL");
    });
    await new Promise<void>((res, rej) => {
      child.stdout.on("data", (d: Buffer) => d.toString().includes("SENT") && res());
      child.on("exit", (c) => rej(new Error(`workload exited early (${c})`)));
    });
    const stop = await agentCli(["stop", "--state-dir", s.stateDir]);
    expect(stop.code, stop.stderr).toBe(0);
    child.kill("SIGKILL");
    const got = byKind.connect(readLog(s.logPath).events).filter((e) => e.addr === "192.0.2.99");
    expect(got.map((e) => ({ port: e.port, result: e.result, pending: e.pending }))).toEqual([
      { port: 80, result: null, pending: true },
    ]);
  });

  it("a connect submitted through io_uring (no connect syscall) is seen too", async () => {
    const bin = await compileC(join(FIXTURES, "uring_connect.c"));
    const ns = await Netns.create();
    const p = await startServers(ns, ["tcp:127.0.0.1:0"]);
    const port = p["tcp:127.0.0.1:0"] as number;
    const r = await agentRun({ cmd: ns.exec(bin, "127.0.0.1", String(port)) });
    expectRunOk(r);
    expect(r.res.stdout).toContain("RESULT 0");
    const got = byKind.connect(r.workload);
    expect(got.map((e) => `${e.proto} ${e.family} ${e.addr} ${e.port}`)).toEqual([
      `tcp inet 127.0.0.1 ${port}`,
    ]);
    expect(got[0]?.pid).toBe(r.rootPid);
    expect(got[0]?.comm).toBe("uring_connect");
    // the syscall tracepoints do not see io_uring: the result may be unknown, never wrong
    expect([0, null]).toContain(got[0]?.result);
  });

  it("connect() entries marked by the ia32 watch's raw sys_enter program where it runs (sys_enter_connect detached); a 32-bit pipe() (i386 syscall 42) is not taken for one", async () => {
    const bin = await compileC(join(FIXTURES, "uring_connect.c"));
    const ns = await Netns.create();
    const p = await startServers(ns, ["udp:127.0.0.1:0", "udp:127.0.0.1:0#b"]);
    const u1 = p["udp:127.0.0.1:0"] as number;
    const u2 = p["udp:127.0.0.1:0#b"] as number;
    // the same workload with the raw program marking entries, and without it (the tracepoint)
    for (const env of [{}, { DPNDNCY_NO_TAMPER32: "1" }]) {
      const r = await agentRun({
        cmd: ns.exec(bin, "127.0.0.1", String(u1), "udp", "i386-pipe-first", `then=${u2}`),
        env: { ...process.env, ...env },
      });
      expectRunOk(r);
      expect(r.res.stdout).toContain("PIPE32 ");
      expect(r.res.stdout).toContain("THEN 0");
      const start = byKind.agent(r.log.events).find((e) => e.event === "start");
      const tamper = String(start?.attach?.tamper);
      // this kernel: syscall tracepoints for the results (no kprobes), so the move applies
      expect(start?.attach?.connect_result).toBe(
        "tracepoint/syscalls/sys_exit_connect+tp_btf/inet_sock_set_state",
      );
      if ("DPNDNCY_NO_TAMPER32" in env) expect(tamper).not.toContain("sys_enter(ia32");
      else expect(tamper).toContain("+raw_tracepoint/sys_enter(ia32,connect entry)");
      // the io_uring connect (no syscall exit) after the 32-bit pipe(): had that pipe marked the
      // thread as inside connect(), its record would have been parked for an exit that never
      // comes, and only flushed at the agent's stop ("pending"); both are here as they happened,
      // the plain one with its result
      const got = byKind
        .connect(r.workload)
        .map((e) => `${e.proto} ${e.addr} ${e.port} ${e.result}${e.pending ? " pending" : ""}`);
      // io_uring: out at once, no result known (no syscall exit to give one)
      expect(got.sort()).toEqual([`udp 127.0.0.1 ${u1} null`, `udp 127.0.0.1 ${u2} 0`].sort());
    }
  });

  it("a thread moved to another CPU inside connect() leaves a stale entry mark behind; a later io_uring connect on that CPU is not taken for its syscall (the mark's age limit)", async () => {
    const bin = await compileC(join(FIXTURES, "uring_connect.c"));
    const ns = await Netns.create();
    const host = await Netns.create();
    const dev = await ns.vethTo(host, ["192.0.2.1/24"], ["192.0.2.10/24"]);
    // 192.0.2.99: a MAC address nobody has, so the blocking connect waits out its send timeout
    await ns.ip(
      "neigh",
      "add",
      "192.0.2.99",
      "lladdr",
      "02:00:00:00:00:99",
      "dev",
      dev.mine,
      "nud",
      "permanent",
    );
    const p = await startServers(host, ["udp:192.0.2.10:0"]);
    const u = p["udp:192.0.2.10:0"] as number;
    const r = await agentRun({
      cmd: ns.exec(bin, "192.0.2.10", String(u), "udp", "tcp-moved-first=192.0.2.99:80"),
    });
    expectRunOk(r);
    // the move happened: entered on CPU 0, returned (EINPROGRESS, timed out) on CPU 1
    expect(r.res.stdout).toContain("TCP -1 115");
    expect(r.res.stdout).toContain("MOVED enter=0 exit=1 uring=0");
    const got = byKind
      .connect(r.workload)
      .map((e) => `${e.proto} ${e.addr} ${e.port} ${e.result}${e.pending ? " pending" : ""}`);
    // the io_uring connect went out at once (no result: no syscall exit); taken for a connect
    // syscall by the stale mark, it would have waited for the stop's flush ("pending")
    expect(got.sort(), JSON.stringify(got)).toEqual(
      [`udp 192.0.2.10 ${u} null`, "tcp 192.0.2.99 80 null"].sort(),
    );
  });

  it("where the ia32 watch marks connect() entries, sys_enter_connect is detached (one program fewer per connect); DPNDNCY_NO_TAMPER32=1 keeps it", async () => {
    for (const [env, tp] of [
      [{}, false],
      [{ DPNDNCY_NO_TAMPER32: "1" }, true],
    ] as const) {
      const s = await agentStart([], undefined, { ...process.env, ...env });
      expect(s.res.code, s.res.stderr).toBe(0);
      const linked = await linkedProgNames();
      const stop = await agentCli(["stop", "--state-dir", s.stateDir]);
      expect(stop.code, stop.stderr).toBe(0);
      expect(linked, JSON.stringify(env)).toContain("dp_exit_connect");
      expect(linked.includes("dp_sys_enter32"), JSON.stringify(env)).toBe(!tp);
      expect(linked.includes("dp_enter_connect"), JSON.stringify(env)).toBe(tp);
    }
  });

  it("fallback hook (syscall tracepoints, DPNDNCY_FORCE_CONNECT_HOOK=tracepoint): TCP v4/v6/mapped, connected UDP, results", async () => {
    const ns = await Netns.create();
    const p = await startServers(ns, [
      "tcp:127.0.0.1:0",
      "tcp:[::1]:0",
      "udp:127.0.0.1:0",
      "tcp:127.0.0.1:0#nb",
    ]);
    const tcp4 = p["tcp:127.0.0.1:0"] as number;
    const tcp6 = p["tcp:[::1]:0"] as number;
    const udp4 = p["udp:127.0.0.1:0"] as number;
    const tcp4nb = p["tcp:127.0.0.1:0#nb"] as number;
    const ops = [
      `tcp:127.0.0.1:${tcp4}`,
      `tcp:[::1]:${tcp6}`,
      `tcp:[::ffff:127.0.0.1]:${tcp4}`,
      `udpc:127.0.0.1:${udp4}`,
      `tcpnb:127.0.0.1:${tcp4nb}`,
      "tcpfail:127.0.0.1:1",
    ];
    const r = await agentRun({
      cmd: ns.exec(PYTHON, join(FIXTURES, "netclient.py"), ...ops),
      env: { ...process.env, DPNDNCY_FORCE_CONNECT_HOOK: "tracepoint" },
    });
    expectRunOk(r);
    const start = byKind.agent(r.log.events).find((e) => e.event === "start");
    expect(start?.attach?.connect).toBe("tracepoint/syscalls/sys_enter_connect");
    expectConnects(
      byKind.connect(r.workload),
      [
        { proto: "tcp", family: "inet", addr: "127.0.0.1", port: tcp4, mapped: false, result: 0 },
        { proto: "tcp", family: "inet6", addr: "::1", port: tcp6, mapped: false, result: 0 },
        {
          proto: "tcp",
          family: "inet-or-inet6",
          addr: "127.0.0.1",
          port: tcp4,
          mapped: true,
          result: 0,
        },
        { proto: "udp", family: "inet", addr: "127.0.0.1", port: udp4, mapped: false, result: 0 },
        // EINPROGRESS is not a failure: the schema says null when not known
        {
          proto: "tcp",
          family: "inet",
          addr: "127.0.0.1",
          port: tcp4nb,
          mapped: false,
          result: 0,
        },
        {
          proto: "tcp",
          family: "inet",
          addr: "127.0.0.1",
          port: 1,
          mapped: false,
          result: -ECONNREFUSED,
        },
      ],
      r.rootPid as number,
    );
  });
});
