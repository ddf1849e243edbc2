// Enforce mode must never fail open (issue #23): each test performs one attack a job could make
// to get an address allowed that no policy allows, or to leave judgement, and checks that it is
// refused (or, where it cannot be refused, that it is in the trace). The workload runs in a
// network namespace joined to an "internet" namespace (resolver stand-ins and servers on
// documentation addresses) by a veth pair, with no route out of the machine.
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { agentCli, agentRun, agentStart, expectRunOk, parseJson } from "../support/kernel/agent.js";
import { compileC } from "../support/kernel/cbuild.js";
import { testCgroup } from "../support/kernel/cgroup.js";
import { policyFile, results } from "../support/kernel/enforce-client.js";
import { FIXTURES, onCleanup, PYTHON, tempDir } from "../support/kernel/env.js";
import { byKind, type ConnectEv, type Ev, readLog } from "../support/kernel/log.js";
import { Netns } from "../support/kernel/netns.js";
import { poll, run, spawnBackground } from "../support/kernel/proc.js";
import { startDns, startServers, type Zone } from "../support/kernel/servers.js";
import { describeKernel } from "../support/kernel/suite.js";

const RESOLVER = "192.0.2.53";
const FORGED = "198.51.100.66"; // what the attacker wants allowed
const GOOD = "192.0.2.1"; // good.example.test's real address
const EPERM = 1;
const CLIENT = join(FIXTURES, "attack_client.py");

const connects = (ev: Ev[]) => (ev as ConnectEv[]).filter((e) => e.kind === "connect");

interface DnsEv {
  kind: string;
  name: string;
  answers: string[];
  source: string;
  transport?: string;
}

/** The workload's namespace and an "internet" with TCP servers on GOOD and FORGED port 80. */
async function lab(): Promise<{ inet: Netns; work: Netns }> {
  const inet = await Netns.create();
  const work = await Netns.create();
  await work.vethTo(
    inet,
    ["192.0.2.2/24", "198.51.100.2/24"],
    [`${GOOD}/24`, `${RESOLVER}/24`, `${FORGED}/24`],
  );
  work.setResolvConf(`nameserver ${RESOLVER}\noptions timeout:2 attempts:1\n`);
  await startServers(inet, ["tcp:0.0.0.0:80"]);
  return { inet, work };
}

describeKernel("enforce: no fail-open", () => {
  it("a forged DNS message at the start of a later TCP segment of a TXT answer is not learned (enforce) nor reported as an answer (observe); a second answer on the same connection still is", async () => {
    const { inet, work } = await lab();
    const dns = spawnBackground(
      inet.exec(
        PYTHON,
        join(FIXTURES, "dns_split.py"),
        "--listen",
        RESOLVER,
        "--forge-name",
        "good.example.test",
        "--forge-addr",
        FORGED,
        "--zone",
        JSON.stringify({ "good.example.test": GOOD }),
      ),
    );
    onCleanup(() => dns.stop());
    await dns.waitForLine(/^READY$/);
    const ops = [
      // the TXT answer (split at the forged message), then an honest A answer, one connection
      `tcpdns:${RESOLVER}:txt.attacker.test/16,good.example.test/1`,
      `connect:${FORGED}:80`,
      `connect:${GOOD}:80`,
    ];
    const r = await agentRun({
      cmd: work.exec(PYTHON, CLIENT, ...ops),
      args: [
        "--mode",
        "enforce",
        "--config",
        policyFile(`mode enforce\ndns-resolver ${RESOLVER}\nallow-host good.example.test\n`),
      ],
    });
    expectRunOk(r);
    expect(dns.stdout()).toMatch(/^SPLIT \d+$/m); // the answer really went out in two segments
    expect(results(r.res.stdout), r.res.stdout + r.res.stderr).toEqual({
      [ops[0] as string]: 0,
      [`connect:${FORGED}:80`]: EPERM,
      [`connect:${GOOD}:80`]: 0,
    });
    const c = connects(r.workload).filter((e) => e.port === 80);
    expect(c.map((e) => `${e.addr} ${e.verdict} ${e.rule}`).sort()).toEqual(
      [`${FORGED} deny default-deny`, `${GOOD} allow allow-host good.example.test`].sort(),
    );
    // the observe parser: the honest answer is a dns event, the forged one is not
    const dnsEv = (r.workload as unknown as DnsEv[]).filter(
      (e) => e.kind === "dns" && e.source === "packet",
    );
    expect(dnsEv.map((e) => `${e.name} ${e.answers.join(",")}`)).toEqual(
      expect.arrayContaining(["good.example.test 192.0.2.1"]),
    );
    expect(dnsEv.filter((e) => e.answers.includes(FORGED))).toEqual([]);
  });

  it("a job cannot answer DNS itself: binding port 53 or the resolver's address is refused, so no forged answer from 127.0.0.53:53 is learned; only TCP and UDP sockets of the inet families are created", async () => {
    const { work } = await lab();
    const LOCAL = "127.0.0.53"; // a loopback resolver, like systemd-resolved or Docker's
    const AF_UNIX = 1;
    const AF_INET = 2;
    const AF_INET6 = 10;
    const AF_NETLINK = 16;
    const [STREAM, DGRAM, RAW] = [1, 2, 3];
    const ops = [
      `forge:${LOCAL}:good.example.test:${FORGED}`, // bind 127.0.0.53:53, answer our own query
      `connect:${FORGED}:80`,
      "bind:tcp:0.0.0.0:53",
      "bind:udp:[::]:53",
      `bind:udp:${LOCAL}:5353`,
      `bind:tcp:[::ffff:${LOCAL}]:8053`,
      "bind:tcp:127.0.0.1:8080", // an ordinary server of the job
      "bind:udp:0.0.0.0:0",
      `socket:${AF_INET}:${STREAM}:262`, // MPTCP: subflows to addresses no connect hook judges
      `socket:${AF_INET}:${DGRAM}:136`, // UDP-Lite
      `socket:${AF_INET6}:${STREAM}:262`,
      `socket:${AF_INET}:${STREAM}:6`,
      `socket:${AF_INET6}:${DGRAM}:17`,
      `socket:${AF_INET}:${DGRAM}:0`,
      `socket:${AF_UNIX}:${STREAM}:0`,
      `socket:${AF_NETLINK}:${RAW}:0`,
    ];
    const r = await agentRun({
      cmd: work.exec(PYTHON, CLIENT, ...ops),
      args: [
        "--mode",
        "enforce",
        "--config",
        policyFile(`mode enforce\ndns-resolver ${LOCAL}\nallow-host good.example.test\n`),
      ],
    });
    expectRunOk(r);
    expect(results(r.res.stdout), r.res.stdout + r.res.stderr).toEqual({
      [`forge:${LOCAL}:good.example.test:${FORGED}`]: EPERM,
      [`connect:${FORGED}:80`]: EPERM,
      "bind:tcp:0.0.0.0:53": EPERM,
      "bind:udp:[::]:53": EPERM,
      [`bind:udp:${LOCAL}:5353`]: EPERM,
      [`bind:tcp:[::ffff:${LOCAL}]:8053`]: EPERM,
      "bind:tcp:127.0.0.1:8080": 0,
      "bind:udp:0.0.0.0:0": 0,
      [`socket:${AF_INET}:${STREAM}:262`]: EPERM,
      [`socket:${AF_INET}:${DGRAM}:136`]: EPERM,
      [`socket:${AF_INET6}:${STREAM}:262`]: EPERM,
      [`socket:${AF_INET}:${STREAM}:6`]: 0,
      [`socket:${AF_INET6}:${DGRAM}:17`]: 0,
      [`socket:${AF_INET}:${DGRAM}:0`]: 0,
      [`socket:${AF_UNIX}:${STREAM}:0`]: 0,
      [`socket:${AF_NETLINK}:${RAW}:0`]: 0,
    });
    // each refusal is a deny record with its rule
    const denied = connects(r.workload).filter((e) => e.verdict === "deny");
    const binds = denied.filter((e) => (e as { op?: string }).op === "bind");
    expect(binds.map((e) => `${e.proto} ${e.addr} ${e.port} ${e.rule}`).sort()).toEqual(
      [
        `udp ${LOCAL} 53 dns-bind`,
        "tcp 0.0.0.0 53 dns-bind",
        "udp :: 53 dns-bind",
        `udp ${LOCAL} 5353 dns-bind`,
        `tcp ${LOCAL} 8053 dns-bind`,
      ].sort(),
    );
    const sockets = denied.filter((e) => (e as { op?: string }).op === "socket");
    expect(sockets.map((e) => `${e.family} ${e.rule}`)).toEqual([
      "inet socket-type",
      "inet socket-type",
      "inet6 socket-type",
    ]);
  });

  it("an exempt process is exempt by pid and start time: a later process that gets its pid is judged", async () => {
    const { work } = await lab();
    const pidAt = await compileC(join(FIXTURES, "pid_at.c"));
    const dir = tempDir("exempt");
    const go = join(dir, "go");
    // the runner stand-in: exempt, waits until it is in the job cgroup, then connects
    const runner = spawnBackground(work.exec(PYTHON, CLIENT, `wait:${go}`, `connect:${FORGED}:80`));
    onCleanup(() => runner.stop());
    const pid = runner.pid;
    const st = await agentStart([
      "--mode",
      "enforce",
      "--config",
      policyFile(`mode enforce\ndns-resolver ${RESOLVER}\nexempt-pid ${pid}\n`),
    ]);
    expect(st.res.code, st.res.stderr).toBe(0);
    const cg = parseJson<{ cgroup: string }>(st.res.stdout, "start output").cgroup;
    writeFileSync(join(cg, "cgroup.procs"), `${pid}\n`);
    writeFileSync(go, "");
    await runner.waitForLine(/^RES connect:/, 30_000);
    expect(runner.stdout()).toContain(`RES connect:${FORGED}:80 0`); // exempt: allowed
    await runner.stop();
    expect(existsSync(`/proc/${pid}/stat`)).toBe(false);
    // the same pid again, now a process of the job (as after a pid wrap-around)
    const reuse = await run([
      pidAt,
      String(pid),
      cg,
      ...work.exec(PYTHON, CLIENT, `connect:${FORGED}:80`),
    ]);
    expect(reuse.stdout, reuse.stderr).toContain(`PID ${pid}`);
    expect(results(reuse.stdout)).toEqual({ [`connect:${FORGED}:80`]: EPERM });
    const stop = await agentCli(["stop", "--state-dir", st.stateDir]);
    expect(stop.code, stop.stderr).toBe(0);
    const c = connects(readLog(st.logPath).events).filter(
      (e) => e.pid === pid && e.addr === FORGED,
    );
    expect(c.map((e) => `${e.verdict} ${e.rule}`)).toEqual([
      "allow exempt-process",
      "deny default-deny",
    ]);
  });

  it("allow-comm drops the opens of the executable of that name, not of any process that renames itself (prctl PR_SET_NAME) to it", async () => {
    const home = tempDir("home");
    mkdirSync(join(home, ".ssh"), { recursive: true, mode: 0o700 });
    writeFileSync(join(home, ".ssh/id_rsa"), "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n");
    const bin = tempDir("bin");
    copyFileSync("/bin/cat", join(bin, "benign-reader"));
    chmodSync(join(bin, "benign-reader"), 0o755);
    const spoof = [
      "import ctypes, os",
      "ctypes.CDLL(None).prctl(15, b'benign-reader', 0, 0, 0)  # PR_SET_NAME",
      "os.close(os.open(os.environ['HOME'] + '/.ssh/id_rsa', os.O_RDONLY))",
    ].join("\n");
    const script = [
      'benign-reader "$HOME/.ssh/id_rsa" >/dev/null', // the real one: a benign reader
      `${PYTHON} -c "${spoof}"`, // a thief with the benign reader's name
    ].join("\n");
    const PATH = `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`;
    const r = await agentRun({
      cmd: ["/bin/sh", "-c", script],
      args: ["--config", policyFile("mode observe\nallow-comm benign-reader\n")],
      env: { ...process.env, HOME: home, PATH },
    });
    expectRunOk(r);
    const files = byKind.file(r.workload);
    expect(files.map((f) => `${f.comm} ${f.rule} ${f.path}`)).toEqual([
      `benign-reader ssh-key ${join(home, ".ssh/id_rsa")}`,
    ]);
    // it is the thief's: its pid ran python, not the benign reader
    const execs = byKind.exec(r.workload);
    const thief = execs.find((e) => e.pid === files[0]?.pid);
    expect(thief?.filename).toBe(PYTHON);
  });

  it("learned addresses expire with their DNS TTL; a full learned map is counted and said, and expired entries make room", async () => {
    const inet = await Netns.create();
    const work = await Netns.create();
    await work.vethTo(inet, ["192.0.2.2/24"], [`${RESOLVER}/24`, "192.0.2.1/24"]);
    await inet.ip("route", "add", "local", "203.0.113.0/24", "dev", "lo");
    await work.ip("route", "add", "203.0.113.0/24", "via", "192.0.2.1");
    work.setResolvConf(`nameserver ${RESOLVER}\noptions timeout:2 attempts:1\n`);
    const zone: Zone = {};
    for (let i = 0; i < 24; i++) zone[`r${i}.ttl.example.test`] = { A: [`203.0.113.${i + 1}`] };
    await startDns(inet, [RESOLVER], zone, 1); // TTL 1 s
    await startServers(inet, ["tcp:0.0.0.0:80"]);
    const fill = Array.from({ length: 16 }, (_, i) => `tcp:r${i}.ttl.example.test:80`);
    const client = (ops: string[]) =>
      `${PYTHON} ${join(FIXTURES, "enforce_client.py")} ${ops.join(" ")}`;
    const script = [
      client(fill), // 16 addresses: the (test-sized) learned map is full
      client(["tcp:r16.ttl.example.test:80"]), // not learned: full
      "sleep 4", // every TTL (1 s, learned-ttl-min 1) has run out; the agent sweeps
      client(["tcp:203.0.113.1:80"]), // r0's address, expired: judged anew, denied
      client(["tcp:r17.ttl.example.test:80"]), // room again: learned, allowed
    ].join("\n");
    const r = await agentRun({
      cmd: work.exec("/bin/sh", "-c", script),
      args: [
        "--mode",
        "enforce",
        "--config",
        policyFile(
          `mode enforce\ndns-resolver ${RESOLVER}\nallow-host *.ttl.example.test\nlearned-ttl-min 1\n`,
        ),
      ],
      env: { ...process.env, DPNDNCY_LEARNED_MAP_ENTRIES: "16" },
    });
    expectRunOk(r);
    const res = results(r.res.stdout);
    for (const op of fill) expect(res[op], op).toBe(0);
    expect(res["tcp:r16.ttl.example.test:80"]).toBe(EPERM);
    expect(res["tcp:203.0.113.1:80"]).toBe(EPERM);
    expect(res["tcp:r17.ttl.example.test:80"]).toBe(0);
    // said on stderr, and counted in the stop record
    expect(r.res.stderr).toMatch(/learned map full/);
    const stop = r.log.events.find((e) => e.kind === "agent" && e.event === "stop") as unknown as {
      learned?: { inserted: number; failed: number; expired: number };
    };
    expect(stop.learned?.failed).toBeGreaterThanOrEqual(1);
    expect(stop.learned?.expired).toBeGreaterThanOrEqual(16);
  });

  it("a job process that writes itself into another cgroup leaves judgement (root can): the move is a tamper event in the trace", async () => {
    const { work } = await lab();
    const other = testCgroup("escape");
    const script = [
      "/bin/true", // a record of this shell in the enforced cgroup
      `echo $$ > '${other.path}/cgroup.procs'`,
      `exec ${work.exec(PYTHON, CLIENT, `connect:${FORGED}:80`).join(" ")}`,
    ].join("\n");
    const r = await agentRun({
      cmd: ["/bin/sh", "-c", script],
      args: [
        "--mode",
        "enforce",
        "--config",
        policyFile(`mode enforce\ndns-resolver ${RESOLVER}\n`),
      ],
    });
    expectRunOk(r);
    // not refusable with the hooks this kernel has: outside the cgroup the connect is not judged
    expect(results(r.res.stdout)).toEqual({ [`connect:${FORGED}:80`]: 0 });
    const tamper = r.log.events.filter((e) => e.kind === "tamper") as unknown as Array<{
      what: string;
      detail: string;
      pid: number;
    }>;
    const esc = tamper.filter((t) => t.what === "cgroup-escape");
    expect(esc.length, JSON.stringify(tamper)).toBe(1);
    expect(esc[0]?.detail).toContain(`out of the enforced cgroup`);
    expect(esc[0]?.detail).toContain(other.path);
    expect(esc[0]?.detail).toContain(`process ${r.rootPid}`);
  });

  it("an AF_PACKET socket in the enforced cgroup (root; its frames meet no connect/sendmsg hook and sock_create never sees the family) is a packet-socket tamper event; one outside it is not", async () => {
    // Python opens a raw packet socket (needs CAP_NET_RAW: root) and closes it again
    const py =
      "import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); s.close(); print('PACKET-OPEN')";
    // the same, outside the enforced cgroup, while the agent runs (after the job's own)
    const marker = join(tempDir("packet"), "job-opened");
    const outside = spawnBackground([
      "/bin/sh",
      "-c",
      `while [ ! -e '${marker}' ]; do sleep 0.05; done; ${PYTHON} -c "${py}"`,
    ]);
    onCleanup(() => outside.stop());
    const r = await agentRun({
      cmd: ["/bin/sh", "-c", `${PYTHON} -c "${py}"; touch '${marker}'; sleep 2`],
      args: [
        "--mode",
        "enforce",
        "--config",
        policyFile(`mode enforce\ndns-resolver ${RESOLVER}\n`),
      ],
    });
    expectRunOk(r);
    expect(r.res.stdout).toContain("PACKET-OPEN"); // not refusable with these hooks
    await poll(() => outside.child.exitCode !== null, 10_000);
    expect(outside.stdout()).toContain("PACKET-OPEN");
    const start = r.log.events.find(
      (e) => e.kind === "agent" && e.event === "start",
    ) as unknown as {
      attach: { tamper: string };
    };
    expect(start.attach.tamper).toMatch(
      /\+(kprobe\/packet_create|tracepoint\/syscalls\/sys_enter_socket\(AF_PACKET\))$/,
    );
    const packet = (
      r.log.events.filter((e) => e.kind === "tamper") as unknown as Array<{
        what: string;
        detail: string;
        pid: number;
      }>
    ).filter((t) => t.what === "packet-socket");
    // exactly the job's one: the same socket opened outside the enforced cgroup is not the job
    expect(packet.length, JSON.stringify(packet)).toBe(1);
    expect(packet[0]?.detail).toMatch(
      /python3 \(pid \d+\) in the enforced cgroup opened an AF_PACKET socket \(type 3, protocol 0x0003\)/,
    );
    expect(packet[0]?.detail).not.toContain(`pid ${outside.pid})`);
  });
});
