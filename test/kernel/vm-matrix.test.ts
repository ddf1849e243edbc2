// The kernel matrix: Debian's cloud kernels booted under qemu (software emulation, one CPU, no
// network device) — 5.10 (bullseye), 6.1 (bookworm) and 6.12 (trixie) on x86_64, 6.12 on arm64
// (qemu-system-aarch64, virt, -cpu max) — each with the static agent of its architecture and
// the workloads in an initramfs, one boot per kernel running every case, at most two VMs at a
// time. The same workloads and assertions as the host suite (file.test.ts, dns.test.ts,
// connect.test.ts, enforce.test.ts, tamper.test.ts, badinput.test.ts) for every attach point
// our 6.18 machines lack: the file hook forced to lsm, fentry, kprobe and tracepoint; DNS
// through the getaddrinfo uprobe and through packets; connect through cgroup sock_addr (results
// from the syscall tracepoints, the kretprobe, or none) and the syscall-tracepoint fallback;
// enforce verdicts, raw sockets refused at sock_create, fail-closed after SIGKILL; tamper
// through ksyscall and tracepoints. 5.10 lacks bpf_loop: there the agent must refuse, naming
// it. A second 6.1 boot takes the BPF LSM away (the agent must fall back) and hides the BTF (the
// agent must refuse, naming it). The timings are printed and written to build/vm/results.json
// with the per-attach-point results that scripts/kernel-table.mjs turns into the README table,
// which the last test compares with the README.
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { REPO } from "../support/kernel/env.js";
import { byKind, type ConnectEv, type DnsEv, type Ev, type FileEv } from "../support/kernel/log.js";
import { run } from "../support/kernel/proc.js";
import { expectVmRunOk, type VmRun, vmRun } from "../support/vm/agentlog.js";
import {
  type Arch,
  ensureBusybox,
  ensureKernel,
  KERNEL_LINES,
  type KernelLine,
  type VmKernel,
} from "../support/vm/kernel.js";
import { type Check, type KernelResult, Results } from "../support/vm/results.js";
import { agentFor, archPrerequisites, describeVm, skipRequested } from "../support/vm/suite.js";
import {
  type BootResult,
  bootScenarios,
  type Scenario,
  type ScenarioResult,
  sq,
} from "../support/vm/vm.js";
import { buildWorkloads, type Workloads } from "../support/vm/workloads.js";

const KERNEL_TABLE = join(REPO, "scripts/kernel-table.mjs");
const README = join(REPO, "README.md");
const ECONNREFUSED = 111;
const O_ACCMODE = 3;
const O_WRONLY = 1;
const O_APPEND = 0o2000;

// ---- the VM's file system -------------------------------------------------------------------
const HOME = "/home/t";
const KEY = `${HOME}/.ssh/id_rsa`;
const CREDS = `${HOME}/.aws/credentials`;
const NOTES = `${HOME}/notes.txt`;
const LINK = "/srv/link/harmless.txt";

type Zone = Record<string, { A?: string[]; AAAA?: string[] }>;
const ZONE: Zone = {
  "gai-any.dpndncy.test": { A: ["192.0.2.80", "192.0.2.81"], AAAA: ["2001:db8::80"] },
  "gai-v4.dpndncy.test": { A: ["192.0.2.82"], AAAA: ["2001:db8::82"] },
  "gai-v6.dpndncy.test": { A: ["192.0.2.83"], AAAA: ["2001:db8::83"] },
  "raw-a.dpndncy.test": { A: ["203.0.113.24"], AAAA: ["2001:db8::24"] },
  "raw-aaaa.dpndncy.test": { A: ["203.0.113.25"], AAAA: ["2001:db8::25", "2001:db8::26"] },
  // enforce mode: documentation addresses put on the VM's lo (loopback itself is always allowed)
  "allowed.dpndncy.test": { A: ["192.0.2.1"] },
  "denied.dpndncy.test": { A: ["198.51.100.1"] },
};
const zoneFile = Object.entries(ZONE)
  .flatMap(([n, r]) => [
    ...(r.A ?? []).map((a) => `${n} A ${a}`),
    ...(r.AAAA ?? []).map((a) => `${n} AAAA ${a}`),
  ])
  .join("\n");

// fixed ports: the VM's loopback is ours alone
const P = {
  tcp4: 7001,
  tcp6: 7002,
  tcp4nb: 7003,
  udp4: 7101,
  udp4b: 7102,
  udp6: 7103,
  udp4c: 7104,
};
const SERVERS = [
  `tcp:127.0.0.1:${P.tcp4}`,
  `tcp:[::1]:${P.tcp6}`,
  `tcp:127.0.0.1:${P.tcp4nb}`,
  `udp:127.0.0.1:${P.udp4}`,
  `udp:127.0.0.1:${P.udp4b}`,
  `udp:[::1]:${P.udp6}`,
  `udp:127.0.0.1:${P.udp4c}`,
  "dns:127.0.0.1:53",
  "dns:[::1]:53",
  "dns:192.0.2.53:53",
  "tcp:192.0.2.1:80",
  "tcp:198.51.100.1:80",
  "tcp:192.0.2.2:7001",
];
const LO_ADDRS = ["192.0.2.1", "192.0.2.2", "192.0.2.53", "198.51.100.1", "198.51.100.53"];

const SETUP = [
  `mkdir -p ${HOME}/.ssh /srv/link && chmod 700 ${HOME}/.ssh`,
  // ICMP ("ping") sockets for root, as distributions allow them: enforce mode must refuse them
  "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range",
  `ln -s ${KEY} ${LINK}`,
  ...LO_ADDRS.map((a) => `ip addr add ${a}/32 dev lo`),
  `vmserve --zone /etc/zone --ready /run/vmserve.ready ${SERVERS.join(" ")} >/run/vmserve.log 2>&1 &`,
  "i=0; while [ ! -e /run/vmserve.ready ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done",
].join("\n");

const IMAGE_FILES = [
  { path: KEY, content: "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n" },
  { path: CREDS, content: "[default]\naws_access_key_id = AKIAEXAMPLE\n" },
  { path: NOTES, content: "nothing to see\n" },
  { path: "/etc/zone", content: `${zoneFile}\n` },
  {
    path: "/etc/enforce.conf",
    content: [
      "mode enforce",
      "dns-resolver 192.0.2.53",
      "allow-host allowed.dpndncy.test",
      "allow-cidr 192.0.2.2/32:7001",
      "",
    ].join("\n"),
  },
];

// ---- scenarios --------------------------------------------------------------------------------
const agentRunCmd = (args: string, script: string) =>
  `dpndncy-agent run --log "$OUT/log.ndjson" ${args} -- /bin/sh -c ${sq(script)}`;

/** file.test.ts's three workloads in one run (python's opens done by the static fileops). */
const FILE_SCRIPT = [
  'cat "$HOME/.ssh/id_rsa" "$HOME/.aws/credentials" "$HOME/notes.txt" >/dev/null',
  'cd "$HOME/.ssh" && cat id_rsa >/dev/null',
  'cd "$HOME" && cat notes.txt >/dev/null',
  'fileops dirfd "$HOME/.aws" credentials >/dev/null',
  'echo "# appended" >> "$HOME/.aws/credentials"',
  `cat ${LINK} >/dev/null`,
  'cd "$HOME/.aws" && cat ../.ssh/./id_rsa >/dev/null',
  'fileops sysopen "$HOME/.ssh/id_rsa" openat2 "$HOME/.ssh/id_rsa" >/dev/null',
  "cat /proc/$$/environ >/dev/null; cat /proc/self/environ >/dev/null",
  "echo done",
].join("\n");

const FILE_HOOKS = {
  lsm: "lsm/file_open",
  fentry: "fentry/security_file_open",
  kprobe: "kprobe/security_file_open",
  tracepoint: "tracepoint/syscalls/sys_exit_openat",
} as const;
type FileHook = keyof typeof FILE_HOOKS;

/** Forced through --file-hook (lsm, fentry) and through DPNDNCY_FORCE_FILE_HOOK (the others). */
const fileScenario = (hook: FileHook): Scenario =>
  hook === "lsm" || hook === "fentry"
    ? {
        name: `file-${hook}`,
        env: { HOME },
        script: agentRunCmd(`--file-hook ${hook}`, FILE_SCRIPT),
      }
    : {
        name: `file-${hook}`,
        env: { HOME, DPNDNCY_FORCE_FILE_HOOK: hook },
        script: agentRunCmd("", FILE_SCRIPT),
      };

const GAI_SCRIPT = [
  "gai gai-any.dpndncy.test any",
  "gai gai-v4.dpndncy.test 4",
  "gai gai-v6.dpndncy.test 6",
  "gai nx.dpndncy.test 4",
].join("\n");
const RAW_SCRIPT = [
  "raw_dns-static raw-a.dpndncy.test A",
  "raw_dns-static raw-aaaa.dpndncy.test AAAA",
  "raw_dns-static nxraw.dpndncy.test A",
].join("\n");

const CONNECT_OPS = [
  `tcp:127.0.0.1:${P.tcp4}`,
  `tcp:[::1]:${P.tcp6}`,
  `tcp:[::ffff:127.0.0.1]:${P.tcp4}`,
  `udp2:127.0.0.1:${P.udp4}`,
  `udp:[::1]:${P.udp6}`,
  `udp:[::ffff:127.0.0.1]:${P.udp4b}`,
  `udpc:127.0.0.1:${P.udp4c}`,
  `tcpnb:127.0.0.1:${P.tcp4nb}`,
  "tcpfail:127.0.0.1:1",
];
const FALLBACK_OPS = [
  `tcp:127.0.0.1:${P.tcp4}`,
  `tcp:[::1]:${P.tcp6}`,
  `tcp:[::ffff:127.0.0.1]:${P.tcp4}`,
  `udpc:127.0.0.1:${P.udp4}`,
  `tcpnb:127.0.0.1:${P.tcp4nb}`,
  "tcpfail:127.0.0.1:1",
];

const EPERM = 1;
/** op -> expected errno (0 = connected), verdict and rule of its connect record */
const ENFORCE: Array<[string, number, "allow" | "deny", string]> = [
  ["tcp:192.0.2.1:80", 0, "allow", "allow-host allowed.dpndncy.test"],
  ["tcp:198.51.100.1:80", EPERM, "deny", "default-deny"], // resolved, not allowed
  ["tcp:192.0.2.2:7001", 0, "allow", "allow-cidr 192.0.2.2/32:7001"],
  ["tcp:192.0.2.2:7002", EPERM, "deny", "default-deny"], // the CIDR's other port
  ["udp:198.51.100.1:9999", EPERM, "deny", "default-deny"],
  ["udp:198.51.100.53:53", EPERM, "deny", "dns-resolver"], // a rogue resolver
  [`tcp:127.0.0.1:${P.tcp4}`, 0, "allow", "loopback"],
];
/** enforce.test.ts's raw and ICMP sockets: op, and family, proto, addr of the refusal record */
const RAW_SOCKS: Array<[string, string, string, string]> = [
  ["sock:icmp4", "inet", "other", "0.0.0.0"],
  ["sock:icmp6", "inet6", "other", "::"],
  ["sock:raw4", "inet", "udp", "0.0.0.0"],
  ["sock:raw6", "inet6", "other", "::"],
];
const ENFORCE_OPS = [...ENFORCE.map(([op]) => op), ...RAW_SOCKS.map(([op]) => op)];

/**
 * fail-closed: op -> errno with the agent alive, and after SIGKILL of the agent. The allowed
 * name is resolved only after the kill: its address is let through because the pinned
 * programs learned it from that answer, with no agent left to help.
 */
const FAIL_CLOSED: Array<[string, number, number]> = [
  ["tcp:192.0.2.2:7001", 0, 0], // allow-cidr
  ["tcp:198.51.100.1:80", EPERM, EPERM], // default-deny
  ["tcp:192.0.2.1:80", EPERM, 0], // allowed.dpndncy.test: unresolved, then resolved
  ["sock:raw4", EPERM, EPERM], // raw sockets still refused
];
const inCgroup = (cmd: string) => `sh -c 'echo $$ > "$1/cgroup.procs" && exec ${cmd}' sh "$cg"`;
const FAIL_CLOSED_SCRIPT = [
  "cp /etc/resolv.conf /tmp/resolv.conf.keep",
  "echo nameserver 192.0.2.53 > /etc/resolv.conf",
  'dpndncy-agent start --log "$OUT/log.ndjson" --state-dir /run/fc --mode enforce --config /etc/enforce.conf > "$OUT/start.json" 2> "$OUT/start.stderr"',
  'echo $? > "$OUT/start.rc"',
  `cg=$(sed -n 's/.*"cgroup":"\\([^"]*\\)".*/\\1/p' "$OUT/start.json")`,
  `pid=$(sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p' "$OUT/start.json")`,
  'echo "$cg" > "$OUT/cgroup"',
  `${inCgroup(`netclient ${FAIL_CLOSED.map(([op]) => op).join(" ")}`)} > "$OUT/before.txt" 2>&1`,
  'kill -9 "$pid"',
  'i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done',
  'kill -0 "$pid" 2>/dev/null && echo alive > "$OUT/agent-alive"',
  // names are still learned in the kernel without the agent: 192.0.2.1 is allowed afresh
  // only by this answer (the pinned programs parse it), the denied name stays denied
  `${inCgroup("raw_dns-static allowed.dpndncy.test A")} > "$OUT/dns-after.txt" 2>&1`,
  `${inCgroup(`netclient ${FAIL_CLOSED.map(([op]) => op).join(" ")}`)} > "$OUT/after.txt" 2>&1`,
  'dpndncy-agent stop --state-dir /run/fc > "$OUT/stop.stdout" 2> "$OUT/stop.stderr"; echo $? > "$OUT/stop.rc"',
  '[ -e "$cg" ] && echo "$cg" > "$OUT/cgroup-left"',
  'ls -a /sys/fs/bpf > "$OUT/bpffs" 2>&1',
  "cp /tmp/resolv.conf.keep /etc/resolv.conf",
].join("\n");

const FULL_SCENARIOS: Scenario[] = [
  { name: "probe", script: "dpndncy-agent probe" },
  ...(Object.keys(FILE_HOOKS) as FileHook[]).map(fileScenario),
  { name: "dns-libc", script: agentRunCmd("", GAI_SCRIPT) },
  { name: "dns-packet", script: agentRunCmd("", RAW_SCRIPT) },
  // the host's configuration: results from the syscall tracepoints (which its file hook loads)
  {
    name: "connect-cgroup",
    env: { DPNDNCY_CONNECT_RESULT: "1" },
    script: agentRunCmd("", `netclient ${CONNECT_OPS.join(" ")}`),
  },
  // this kernel's default: no syscall tracepoint at all; results from a kprobe pair on connect(2)
  {
    name: "connect-cgroup-kprobe",
    script: agentRunCmd("", `netclient ${CONNECT_OPS.join(" ")}`),
  },
  // and with that pair switched off: results unknown
  {
    name: "connect-cgroup-noresult",
    env: { DPNDNCY_NO_CONNECT_RESULT: "1" },
    script: agentRunCmd("", `netclient ${CONNECT_OPS.join(" ")}`),
  },
  {
    name: "connect-tracepoint",
    env: { DPNDNCY_FORCE_CONNECT_HOOK: "tracepoint" },
    script: agentRunCmd("", `netclient ${FALLBACK_OPS.join(" ")}`),
  },
  { name: "connect-uring", script: agentRunCmd("", `uring_connect 127.0.0.1 ${P.tcp4}`) },
  // ptrace of the agent by its own job ($PPID of the job's shell is the agent): the kprobe
  // (ksyscall) hooks this kernel has, and the tracepoint fallback the host uses
  { name: "tamper-ptrace", script: agentRunCmd("", "tamper_ptrace $PPID; sleep 1.5") },
  // the same through the 32-bit syscall entry (int 0x80; x86 only): the kprobe on
  // security_ptrace_access_check catches it where the __x64_sys_* probes cannot
  {
    name: "tamper-ptrace32",
    arch: "amd64",
    script: agentRunCmd("", "tamper_ptrace32 $PPID; sleep 1.5"),
  },
  {
    name: "tamper-ptrace-tp",
    env: { DPNDNCY_FORCE_TAMPER_TRACEPOINT: "1" },
    script: agentRunCmd("", "tamper_ptrace $PPID; sleep 1.5"),
  },
  {
    // enforce.test.ts in small: names learned from the sanctioned resolver's answers, a CIDR with
    // a port, default-deny (EPERM), a rogue resolver, loopback; the resolver is 192.0.2.53 here
    name: "enforce",
    script: [
      // without the agent every raw and ICMP socket opens: the refusals below are its doing
      `netclient ${RAW_SOCKS.map(([op]) => op).join(" ")} > "$OUT/free.txt" 2>&1`,
      "cp /etc/resolv.conf /tmp/resolv.conf.keep",
      "echo nameserver 192.0.2.53 > /etc/resolv.conf",
      agentRunCmd(
        "--mode enforce --config /etc/enforce.conf",
        [
          "raw_dns-static allowed.dpndncy.test A",
          "raw_dns-static denied.dpndncy.test A",
          `netclient ${ENFORCE_OPS.join(" ")}`,
          "echo netclient=$?",
        ].join("\n"),
      ),
      "rc=$?",
      "cp /tmp/resolv.conf.keep /etc/resolv.conf",
      "exit $rc",
    ].join("\n"),
  },
  { name: "fail-closed", script: FAIL_CLOSED_SCRIPT },
  { name: "servers", script: "cat /run/vmserve.log" },
];

/** Runs a refused command: its stdout, stderr and exit code, and whether the workload ran. */
const refusal = (tag: string, cmd: string) =>
  [
    `cat /proc/mounts > "$OUT/${tag}.mounts-before"`,
    `${cmd} > "$OUT/${tag}.stdout" 2> "$OUT/${tag}.stderr"; echo $? > "$OUT/${tag}.rc"`,
    `cat /proc/mounts > "$OUT/${tag}.mounts-after"`,
  ].join("\n");
const refusedRun = (tag: string, args = "") =>
  refusal(tag, `dpndncy-agent run --log /tmp/${tag}.ndjson ${args} -- touch "$OUT/${tag}.ran"`);

// without lsm=...,bpf: the BPF LSM is off (Debian's default list has it last, so we name the rest)
const NO_BPF_LSM = "lsm=landlock,lockdown,yama,apparmor";
const DEGRADED_SCENARIOS: Scenario[] = [
  { name: "probe-nolsm", script: "dpndncy-agent probe" },
  { name: "file-auto", env: { HOME }, script: agentRunCmd("", FILE_SCRIPT) },
  { name: "lsm-forced", script: refusedRun("run", "--file-hook lsm") },
  {
    name: "nobtf-hidden",
    script: [
      "mount -t tmpfs nobtf /sys/kernel/btf",
      refusal("probe", "dpndncy-agent probe"),
      refusedRun("run"),
      "umount /sys/kernel/btf",
    ].join("\n"),
  },
  {
    name: "nobtf-env",
    env: { DPNDNCY_BTF_PATH: "/nonexistent/vmlinux" },
    script: [refusal("probe", "dpndncy-agent probe"), refusedRun("run")].join("\n"),
  },
];

// ---- assertions shared with the host suite ------------------------------------------------------
const sortU = (a: string[]) => [...new Set(a)].sort();

function expectFileEvents(r: VmRun): void {
  const execs = byKind.exec(r.workload);
  const files = byKind.file(r.workload);
  const root = r.rootPid as number;
  const execOf = (pid: number) => execs.find((e) => e.pid === pid);
  const who = (f: FileEv) =>
    f.pid === root ? "sh" : (execOf(f.pid)?.argv.join(" ") ?? `pid ${f.pid} (${f.comm})`);
  const environ = `/proc/${root}/environ`;
  expect(files.map((f) => `${who(f)} | ${f.rule} ${f.path}`).sort()).toEqual(
    [
      `cat ${KEY} ${CREDS} ${NOTES} | ssh-key ${KEY}`,
      `cat ${KEY} ${CREDS} ${NOTES} | aws-credentials ${CREDS}`,
      `cat id_rsa | ssh-key ${KEY}`,
      `fileops dirfd ${HOME}/.aws credentials | aws-credentials ${CREDS}`,
      `sh | aws-credentials ${CREDS}`, // the shell's own >> redirection
      `cat ${LINK} | ssh-key ${KEY}`,
      `cat ../.ssh/./id_rsa | ssh-key ${KEY}`,
      `fileops sysopen ${KEY} openat2 ${KEY} | ssh-key ${KEY}`, // open(2)
      `fileops sysopen ${KEY} openat2 ${KEY} | ssh-key ${KEY}`, // openat2(2)
      `cat ${environ} | proc-environ ${environ}`,
    ].sort(),
  );
  for (const f of files) {
    expect(f.uid).toBe(0);
    expect(f.ppid, `ppid of ${f.comm} ${f.path}`).toBe(execOf(f.pid)?.ppid ?? f.ppid);
    if (f.pid !== root) {
      expect(f.ppid, `${f.comm} is a child of the shell`).toBe(root);
      expect(f.flags & O_ACCMODE).toBe(0);
    }
  }
  const append = files.find((f) => f.pid === root) as FileEv;
  expect(append.comm).toBe("sh");
  expect(append.flags & O_ACCMODE).toBe(O_WRONLY);
  expect(append.flags & O_APPEND).toBe(O_APPEND);
  // the non-sensitive file and /proc/self/environ never show up
  expect(byKind.file(r.log.events).filter((f) => f.path.endsWith("notes.txt"))).toEqual([]);
  expect(byKind.file(r.workload).filter((f) => f.path.endsWith("/environ"))).toHaveLength(1);
}

/** The pid of the workload process whose argv contains `arg`. */
function pidOf(r: VmRun, arg: string): number {
  const ex = byKind.exec(r.workload).filter((e) => e.argv.includes(arg));
  expect(ex.length, `exec of a process with argument ${arg}`).toBeGreaterThanOrEqual(1);
  return ex[ex.length - 1]?.pid as number;
}

interface Want {
  proto: "tcp" | "udp";
  family: "inet" | "inet6" | "inet-or-inet6";
  addr: string;
  port: number;
  mapped: boolean;
  /** null: unknown (unconnected UDP sendto, or no result hooks attached). */
  result: number | null;
}

/** connect.test.ts's check: exactly `want`, no duplicates, no extras. */
function expectConnects(got: ConnectEv[], want: Want[], pid: number): void {
  const key = (e: { proto: string; addr: string; port: number; mapped?: boolean }) =>
    `${e.proto} ${e.addr} ${e.port}${e.mapped ? " mapped" : ""}`;
  expect(got.map(key).sort(), "connect events of the workload").toEqual(want.map(key).sort());
  for (const w of want) {
    const e = got.find((g) => key(g) === key(w)) as ConnectEv;
    expect(e.pid).toBe(pid);
    expect(e.uid).toBe(0);
    expect(e.comm).toBe("netclient");
    if (w.family === "inet-or-inet6") expect(["inet", "inet6"]).toContain(e.family);
    else expect(e.family, key(w)).toBe(w.family);
    expect(e.mapped ?? false, key(w)).toBe(w.mapped);
    expect(e.result, `result of ${key(w)}`).toBe(w.result);
  }
}

const w = (
  proto: Want["proto"],
  family: Want["family"],
  addr: string,
  port: number,
  mapped: boolean,
  result: Want["result"],
): Want => ({ proto, family, addr, port, mapped, result });

/** connect.test.ts's first test's expectations; `known=false` (no result hooks): every result null. */
function cgroupWant(known: boolean): Want[] {
  const r = (v: number) => (known ? v : null);
  return [
    w("tcp", "inet", "127.0.0.1", P.tcp4, false, r(0)),
    w("tcp", "inet6", "::1", P.tcp6, false, r(0)),
    w("tcp", "inet-or-inet6", "127.0.0.1", P.tcp4, true, r(0)),
    w("udp", "inet", "127.0.0.1", P.udp4, false, null), // unconnected sendto: never known
    w("udp", "inet6", "::1", P.udp6, false, null),
    w("udp", "inet-or-inet6", "127.0.0.1", P.udp4b, true, null),
    w("udp", "inet", "127.0.0.1", P.udp4c, false, r(0)), // connect()ed UDP
    w("tcp", "inet", "127.0.0.1", P.tcp4nb, false, r(0)),
    w("tcp", "inet", "127.0.0.1", 1, false, r(-ECONNREFUSED)),
  ];
}

/** badinput.test.ts's check, from inside the VM: non-zero, one line naming it, nothing ran or stayed mounted. */
function expectRefused(s: ScenarioResult, tag: string, names: RegExp, workload = true): string {
  const f = (x: string) => s.files[`${tag}.${x}`]?.toString("utf8");
  const rc = Number(f("rc") ?? "NaN");
  const err = (f("stderr") ?? "").trim();
  expect(rc, `${s.name}/${tag}: exit code (stderr: ${err})`).not.toBe(0);
  expect(rc, `${s.name}/${tag}: killed by a signal`).toBeLessThan(128);
  expect(err.split("\n"), `${s.name}/${tag}: exactly one line on stderr`).toHaveLength(1);
  expect(err, `${s.name}/${tag}`).toMatch(names);
  if (workload) expect(s.files[`${tag}.ran`], `${s.name}/${tag}: the workload ran`).toBeUndefined();
  expect(f("mounts-after"), `${s.name}/${tag}: mounts left behind`).toBe(f("mounts-before"));
  return err;
}

interface Probe {
  kernel: string;
  btf: boolean;
  attach: Record<string, string>;
  hooks: Record<
    string,
    {
      attach: string;
      available?: Record<string, boolean>;
      unavailable: Record<string, string>;
      candidates?: string[];
    }
  >;
}

// ---- the matrix ---------------------------------------------------------------------------------
// ---- the matrix ---------------------------------------------------------------------------------
/**
 * What each kernel line must do. "full": every scenario, the host's events on every attach
 * point. "refused": the agent must refuse with one line naming the missing feature and attach
 * nothing (Debian's 5.10 has no bpf_loop, which the exec hook needs).
 */
const PLAN: Record<string, { kind: "full" } | { kind: "refused"; names: RegExp; feature: string }> =
  {
    "5.10-amd64": { kind: "refused", names: /bpf_loop.*Linux 5\.17/, feature: "bpf_loop (5.17+)" },
    "6.1-amd64": { kind: "full" },
    "6.12-amd64": { kind: "full" },
    "6.12-arm64": { kind: "full" },
  };
/** The line that also gets the second boot without the BPF LSM and with BTF hidden. */
const DEGRADED_LINE = "6.1-amd64";

/** DPNDNCY_VM_KERNELS=id,id picks kernel lines (all by default); the left-out ones are named. */
function selectedLines(): KernelLine[] {
  const env = process.env.DPNDNCY_VM_KERNELS;
  const ids = env ? env.split(",").map((s) => s.trim()) : Object.keys(PLAN);
  for (const id of ids) {
    if (!(id in PLAN) || !(id in KERNEL_LINES)) {
      throw new Error(
        `DPNDNCY_VM_KERNELS: unknown kernel line "${id}" (${Object.keys(PLAN).join(", ")})`,
      );
    }
  }
  const out = Object.keys(PLAN).filter((id) => !ids.includes(id));
  if (out.length > 0) {
    console.warn(`vm matrix: LEFT OUT by DPNDNCY_VM_KERNELS=${env}: ${out.join(", ")}`);
  }
  return ids.map((id) => KERNEL_LINES[id] as KernelLine);
}

/** 5.10: every entry point refuses, naming bpf_loop; nothing runs, nothing stays mounted. */
const REFUSED_SCENARIOS: Scenario[] = [
  {
    name: "refused",
    env: { HOME },
    script: [
      refusal("probe", "dpndncy-agent probe"),
      refusedRun("run"),
      refusedRun("enforce", "--mode enforce --config /etc/enforce.conf"),
      refusedRun("fentry", "--file-hook fentry"),
      refusal(
        "start",
        "dpndncy-agent start --log /tmp/start.ndjson --state-dir /run/refused --mode enforce --config /etc/enforce.conf",
      ),
      // nothing of ours is left behind: no pins, no state, no cgroup
      'ls -a /sys/fs/bpf > "$OUT/bpffs" 2>&1; ls /run/refused > "$OUT/state" 2>&1',
    ].join("\n"),
  },
];

/** seconds each boot takes alone here, to start the longest first */
const EXPECTED_BOOT_S: Record<string, number> = {
  "6.12-arm64": 170,
  "6.12-amd64": 65,
  "6.1-amd64": 45,
  "6.1-amd64-degraded": 12,
  "5.10-amd64": 8,
};

describeVm(
  "kernel matrix: Debian 5.10, 6.1, 6.12 (x86_64) and 6.12 (arm64) under qemu",
  (missing) => {
    const results = new Results();
    const lines = selectedLines();
    const kernels = new Map<string, VmKernel>();
    const boots = new Map<string, BootResult>();
    /** per boot: why it has no result */
    const bootErrors = new Map<string, Error>();
    const timings: Record<string, number> = {};
    const rows = new Map<string, KernelResult>();
    const skipTold = new Set<string>();

    beforeAll(async () => {
      if (missing.length > 0) return;
      const t0 = Date.now();
      // per architecture, once: workloads and busybox
      const perArch = new Map<Arch, Promise<{ workloads: Workloads; busybox: string }>>();
      const archReady = (arch: Arch) => {
        let p = perArch.get(arch);
        if (p === undefined) {
          const why = archPrerequisites(arch);
          p =
            why.length > 0
              ? Promise.reject(
                  new Error(`${arch} prerequisites missing:\n  - ${why.join("\n  - ")}`),
                )
              : Promise.all([buildWorkloads(arch), ensureBusybox(arch)]).then(
                  ([workloads, busybox]) => ({
                    workloads,
                    busybox,
                  }),
                );
          p.catch(() => {});
          perArch.set(arch, p);
        }
        return p;
      };
      // the boots, longest first, two at a time (the VM lock slots also count other runs)
      const specs: Array<{
        boot: string;
        line: KernelLine;
        append: string;
        scenarios: Scenario[];
      }> = [];
      for (const line of lines) {
        const plan = PLAN[line.id];
        if (plan?.kind === "refused") {
          specs.push({
            boot: line.id,
            line,
            append: "lsm=landlock,lockdown,yama,apparmor,bpf",
            scenarios: REFUSED_SCENARIOS,
          });
        } else {
          specs.push({
            boot: line.id,
            line,
            append: "lsm=landlock,lockdown,yama,apparmor,bpf",
            scenarios: FULL_SCENARIOS.filter((x) => !x.arch || x.arch === line.arch),
          });
          if (line.id === DEGRADED_LINE) {
            specs.push({
              boot: `${line.id}-degraded`,
              line,
              append: NO_BPF_LSM,
              scenarios: DEGRADED_SCENARIOS,
            });
          }
        }
      }
      specs.sort((a, b) => (EXPECTED_BOOT_S[b.boot] ?? 60) - (EXPECTED_BOOT_S[a.boot] ?? 60));
      const kernelOf = new Map<string, Promise<VmKernel>>();
      for (const line of lines) {
        const k = ensureKernel(line);
        k.catch(() => {});
        kernelOf.set(line.id, k);
      }
      const queue = [...specs];
      const worker = async () => {
        for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
          const t = Date.now();
          try {
            const [kernel, ready] = await Promise.all([
              kernelOf.get(s.line.id) as Promise<VmKernel>,
              archReady(s.line.arch),
            ]);
            kernels.set(s.line.id, kernel);
            const prepared = Date.now();
            const b = await bootScenarios({
              name: s.boot,
              kernel,
              workloads: ready.workloads,
              busybox: ready.busybox,
              agent: agentFor(s.line.arch),
              append: s.append,
              setup: SETUP,
              files: IMAGE_FILES,
              scenarios: s.scenarios,
              // TCG on a shared 2-vCPU machine: x86 boots take 45-140 s, arm64 170-480 s
              timeoutMs: s.line.arch === "arm64" ? 900_000 : 600_000,
            });
            boots.set(s.boot, b);
            timings[`${s.boot}_wait_ms`] = prepared - t;
            timings[`${s.boot}_ms`] = Date.now() - prepared;
            rows.set(
              s.boot,
              results.kernel(s.boot, () => ({
                kernel: b.release || kernel.release,
                arch: s.line.arch,
                series: s.line.series,
                how: `Debian ${kernel.pkg} ${kernel.pkgVersion}, qemu TCG${s.line.arch === "arm64" ? " (aarch64 virt, -cpu max)" : ""}, -append '${b.cmdline}'`,
                lsm: b.lsm,
                boot_ms: b.ms,
              })),
            );
            console.log(
              `vm matrix: ${s.boot}: ${kernel.pkg} ${kernel.pkgVersion}${kernel.fetched ? " (downloaded)" : " (cached)"}; ` +
                `kernel, busybox and workloads ready after ${prepared - t} ms; image ${b.buildMs} ms; ` +
                `waited ${Math.max(0, Date.now() - prepared - b.ms - b.buildMs)} ms for a VM slot; ` +
                `VM ${b.ms} ms for ${s.scenarios.length} scenarios`,
            );
          } catch (e) {
            bootErrors.set(s.boot, e as Error);
          }
        }
      };
      await Promise.all([worker(), worker()]);
      timings.total_ms = Date.now() - t0;
      console.log(`vm matrix: every boot done in ${timings.total_ms} ms (two VMs at a time)`);
    }, 40 * 60_000);

    afterAll(() => {
      if (boots.size === 0) return;
      const file = writeResults();
      console.log(
        `vm matrix: total ${Date.now() - results.started} ms; results in ${file} ` +
          "(`node scripts/kernel-table.mjs` prints the README table)",
      );
    });

    const writeResults = () => {
      let agent = "?";
      for (const b of boots.values()) {
        try {
          const p = JSON.parse(b.scenarios.get("probe")?.stdout ?? "") as Record<string, string>;
          agent = `${p.version} (${p.commit})`;
          break;
        } catch {}
      }
      return results.write({
        agent,
        timings,
        lines: lines.map((l) => l.id),
        all_lines: lines.length === Object.keys(PLAN).length,
      });
    };

    /** Throws why `boot` has no result (a missing prerequisite fails, unless skipping is asked). */
    const need = (ctx: { skip: () => void }, boot: string) => {
      if (missing.length > 0) {
        throw new Error(
          `VM matrix prerequisites missing (set DPNDNCY_SKIP_KERNEL_TESTS=1 to skip instead):\n  - ${missing.join("\n  - ")}`,
        );
      }
      const err = bootErrors.get(boot);
      if (err !== undefined) {
        if (skipRequested()) {
          if (!skipTold.has(boot)) {
            console.warn(
              `SKIPPED the VM matrix's ${boot} (DPNDNCY_SKIP_KERNEL_TESTS=1) because: ${err.message}`,
            );
            skipTold.add(boot);
          }
          ctx.skip();
        }
        throw err;
      }
    };

    const scen = (b: BootResult | undefined, name: string): ScenarioResult => {
      const s = b?.scenarios.get(name);
      if (s === undefined || s.rc === null) {
        throw new Error(
          `scenario ${name} did not finish in the VM; console tail:\n${b?.console.slice(-3000)}`,
        );
      }
      return s;
    };
    const check = (row: string, c: Omit<Check, "pass" | "error" | "detail">, fn: () => unknown) =>
      results.check(rows.get(row), c, fn);

    for (const line of lines) {
      const id = line.id;
      const plan = PLAN[id];
      const B = () => boots.get(id);
      const label = `${id}: Debian's ${line.series} cloud kernel (${line.arch}, ${line.suite})`;
      if (plan?.kind === "refused") {
        describe(label, () => {
          beforeEach((ctx) => need(ctx, id));
          it(`lacks ${plan.feature}: probe, run (observe, enforce, a forced file hook) and start refuse with one line naming it; nothing runs, attaches or stays mounted`, () => {
            const b = B();
            expect(b?.release.startsWith(`${line.series}.`), b?.release).toBe(true);
            expect(b?.done, `the init did not finish:\n${b?.console.slice(-3000)}`).toBe(true);
            const s = scen(b, "refused");
            check(
              id,
              { hook: "refusal", attach: `missing ${plan.feature}`, scenario: "refused" },
              () => {
                expect(s.rc, s.stderr).toBe(0);
                const msgs = ["run", "enforce", "fentry"].map((t) =>
                  expectRefused(s, t, plan.names),
                );
                expectRefused(s, "start", plan.names, false);
                // probe: exit 1, the same line, and JSON that names the hook it cannot load
                const probe = expectRefused(s, "probe", plan.names, false);
                const p = JSON.parse(s.files["probe.stdout"]?.toString() || "{}") as Probe;
                const row = rows.get(id);
                if (row) row.probe = p;
                expect(p.kernel).toBe(b?.release);
                expect(p.attach.exec).toBe("none");
                expect(p.hooks.exec?.unavailable["tracepoint/sched/sched_process_exec"]).toMatch(
                  plan.names,
                );
                expect(
                  s.files.bpffs
                    ?.toString()
                    .split(/\s+/)
                    .filter((x) => x && x !== "." && x !== ".."),
                  "bpffs",
                ).toEqual([]);
                // start's state directory holds at most its lock: no state a later stop would "recover"
                expect(
                  s.files.state
                    ?.toString()
                    .split(/\s+/)
                    .filter((x) => x),
                  "state dir",
                ).not.toContain("state");
                return [probe, ...msgs][0];
              },
            );
          });
        });
        continue;
      }
      describe(label, () => {
        beforeEach((ctx) => need(ctx, id));

        it(`boots Debian's ${line.series} kernel (${line.arch}) with the BPF LSM on the list and runs every scenario`, () => {
          const b = B();
          expect(b?.release).toBe(kernels.get(id)?.release);
          expect(b?.release.startsWith(`${line.series}.`), b?.release).toBe(true);
          expect(b?.release.endsWith(`-cloud-${line.arch}`), b?.release).toBe(true);
          expect(b?.lsm.split(",")).toContain("bpf");
          expect(b?.done, `the init did not finish:\n${b?.console.slice(-3000)}`).toBe(true);
        });

        it("probe: every attach point of every hook is available (file: lsm, fentry, kprobe, tracepoint)", () => {
          const s = scen(B(), "probe");
          check(id, { hook: "probe", attach: "all", scenario: "probe" }, () => {
            expect(s.rc, s.stderr).toBe(0);
            const p = JSON.parse(s.stdout) as Probe;
            const row = rows.get(id);
            if (row) row.probe = p;
            expect(p.kernel).toBe(B()?.release);
            expect(p.btf).toBe(true);
            expect(p.hooks.file?.available).toEqual({
              [FILE_HOOKS.lsm]: true,
              [FILE_HOOKS.fentry]: true,
              [FILE_HOOKS.kprobe]: true,
              [FILE_HOOKS.tracepoint]: true,
            });
            for (const h of ["exec", "connect", "file", "dns"]) {
              expect(p.hooks[h]?.unavailable, `unavailable ${h} attach points`).toEqual({});
            }
            expect(p.attach).toEqual({
              exec: "tracepoint/sched/sched_process_exec",
              connect: "cgroup/connect4,connect6,sendmsg4,sendmsg6",
              file: FILE_HOOKS.lsm,
              dns: "uprobe/getaddrinfo+cgroup_skb/ingress",
            });
            expect(p.hooks.connect?.candidates).toContain("tracepoint/syscalls/sys_enter_connect");
          });
        });

        for (const hook of Object.keys(FILE_HOOKS) as FileHook[]) {
          it(`file hook forced to ${hook} (${FILE_HOOKS[hook]}): the host's file events, exact paths, rules, pid/ppid, flags`, () => {
            const r = vmRun(scen(B(), `file-${hook}`));
            check(id, { hook: "file", attach: FILE_HOOKS[hook], scenario: `file-${hook}` }, () => {
              expectVmRunOk(r);
              expect(r.start?.attach?.file).toBe(FILE_HOOKS[hook]);
              expectFileEvents(r);
            });
            if (hook === "lsm") {
              // the exec hook, on the same run: every process of the workload with its parent and exit
              check(
                id,
                { hook: "exec", attach: r.start?.attach?.exec ?? "?", scenario: "file-lsm" },
                () => {
                  const execs = byKind.exec(r.workload);
                  const exits = byKind.exit(r.workload);
                  const cats = execs.filter((e) => e.argv[0] === "cat");
                  // cat x3 + link + ../ + /proc/$$/environ + /proc/self/environ
                  expect(cats).toHaveLength(7);
                  for (const c of cats) {
                    expect(c.ppid).toBe(r.rootPid);
                    expect(
                      exits.find((x) => x.pid === c.pid)?.code,
                      `exit of ${c.argv.join(" ")}`,
                    ).toBe(0);
                  }
                  expect(exits.find((x) => x.pid === r.rootPid)?.code).toBe(0);
                },
              );
            }
          });
        }

        it("DNS via the getaddrinfo uprobe (dynamic glibc program): source libc, exact names, qtypes, answers, pid", () => {
          const r = vmRun(scen(B(), "dns-libc"));
          check(id, { hook: "dns", attach: "uprobe/getaddrinfo", scenario: "dns-libc" }, () => {
            expectVmRunOk(r);
            expect(r.start?.attach?.dns).toMatch(/^uprobe\/getaddrinfo/);
            expect(r.scen.stdout).toContain("192.0.2.80");
            const libc = byKind.dns(r.log.events).filter((e) => e.source === "libc");
            const expectOne = (n: string, qtype: string, answers: string[]) => {
              const evs = libc.filter((e) => e.name === n);
              expect(evs, `libc dns events for ${n}`).toHaveLength(1);
              const e = evs[0] as DnsEv;
              expect(e.pid, `pid of the ${n} lookup`).toBe(pidOf(r, n));
              expect(e.comm).toBe("gai");
              // the shell's children, but the last command is exec'd in place of the shell
              const ex = byKind.exec(r.workload).filter((x) => x.pid === e.pid);
              expect(e.ppid).toBe(ex[ex.length - 1]?.ppid);
              expect(e.qtype).toBe(qtype);
              expect(sortU(e.answers)).toEqual(sortU(answers));
            };
            expectOne("gai-any.dpndncy.test", "ANY", ["192.0.2.80", "192.0.2.81", "2001:db8::80"]);
            expectOne("gai-v4.dpndncy.test", "A", ["192.0.2.82"]);
            expectOne("gai-v6.dpndncy.test", "AAAA", ["2001:db8::83"]);
            expectOne("nx.dpndncy.test", "A", []);
            expect(libc).toHaveLength(4);
            // the same lookups cross port 53 too: any packet event must agree with the server
            for (const e of byKind.dns(r.log.events).filter((x) => x.source === "packet")) {
              const rec = ZONE[e.name] ?? {};
              expect(["A", "AAAA"]).toContain(e.qtype);
              expect(sortU(e.answers)).toEqual(sortU(rec[e.qtype as "A" | "AAAA"] ?? []));
            }
          });
        });

        it("DNS via packets (a static binary sending its own UDP query to the in-VM server): source packet, exact names, answers, pid", () => {
          const r = vmRun(scen(B(), "dns-packet"));
          check(id, { hook: "dns", attach: "cgroup_skb/ingress", scenario: "dns-packet" }, () => {
            expectVmRunOk(r);
            expect(r.start?.attach?.dns_packet).toBe("cgroup_skb/ingress");
            expect(r.scen.stdout).toContain("203.0.113.24");
            const ours = byKind.dns(r.log.events);
            expect(
              ours.filter((e) => e.source === "libc"),
              "no libc events: static binary",
            ).toEqual([]);
            const expectOne = (n: string, qtype: string, answers: string[]) => {
              const evs = ours.filter((e) => e.name === n);
              expect(evs, `dns events for ${n}`).toHaveLength(1);
              const e = evs[0] as DnsEv;
              expect(e).toMatchObject({ source: "packet", qtype, comm: "raw_dns-static" });
              expect(sortU(e.answers)).toEqual(sortU(answers));
              expect(e.pid, `pid of the ${n} lookup`).toBe(pidOf(r, n));
            };
            expectOne("raw-a.dpndncy.test", "A", ["203.0.113.24"]);
            expectOne("raw-aaaa.dpndncy.test", "AAAA", ["2001:db8::25", "2001:db8::26"]);
            expectOne("nxraw.dpndncy.test", "A", []);
            expect(ours).toHaveLength(3);
          });
          // both DNS workloads really asked our server
          const q = scen(B(), "servers").stdout;
          for (const line of [
            "QUERY udp gai-v4.dpndncy.test A",
            "QUERY udp gai-v6.dpndncy.test AAAA",
            "QUERY udp raw-a.dpndncy.test A",
          ]) {
            expect(q).toContain(line);
          }
        });

        it("connect via cgroup connect4/6 + sendmsg4/6 (results from the syscall tracepoints, as on the host): TCP/UDP v4, v6, mapped, refused", () => {
          const r = vmRun(scen(B(), "connect-cgroup"));
          check(
            id,
            {
              hook: "connect",
              attach: "cgroup/connect4,connect6,sendmsg4,sendmsg6",
              scenario: "connect-cgroup",
            },
            () => {
              expectVmRunOk(r);
              expect(r.start?.attach?.connect).toBe("cgroup/connect4,connect6,sendmsg4,sendmsg6");
              expect(r.scen.stdout).toContain(`ERR ${ECONNREFUSED} tcpfail:127.0.0.1:1`);
              expectConnects(byKind.connect(r.workload), cgroupWant(true), r.rootPid as number);
            },
          );
        });

        it("connect via cgroup hooks with this kernel's default attach set (no syscall tracepoint): results from the kretprobe on connect(2), exact", () => {
          const r = vmRun(scen(B(), "connect-cgroup-kprobe"));
          check(
            id,
            {
              hook: "connect",
              attach: "cgroup/connect4,connect6,sendmsg4,sendmsg6 + kretsyscall/connect",
              scenario: "connect-cgroup-kprobe",
            },
            () => {
              expectVmRunOk(r);
              expect(r.start?.attach?.connect).toBe("cgroup/connect4,connect6,sendmsg4,sendmsg6");
              expect(r.start?.attach?.connect_result).toBe(
                "kretsyscall/connect+tp_btf/inet_sock_set_state",
              );
              expect(r.scen.stdout).toContain(`ERR ${ECONNREFUSED} tcpfail:127.0.0.1:1`);
              expectConnects(byKind.connect(r.workload), cgroupWant(true), r.rootPid as number);
            },
          );
        });

        it("connect via cgroup hooks without any result hook (DPNDNCY_NO_CONNECT_RESULT=1): same events, results unknown", () => {
          const r = vmRun(scen(B(), "connect-cgroup-noresult"));
          check(
            id,
            {
              hook: "connect",
              attach: "cgroup/connect4,connect6,sendmsg4,sendmsg6 (no result tracepoints)",
              scenario: "connect-cgroup-noresult",
            },
            () => {
              expectVmRunOk(r);
              expect(r.start?.attach?.connect).toBe("cgroup/connect4,connect6,sendmsg4,sendmsg6");
              expect(r.start?.attach?.connect_result).toBe("none");
              expectConnects(byKind.connect(r.workload), cgroupWant(false), r.rootPid as number);
            },
          );
        });

        it("connect submitted through io_uring (no connect syscall) is seen by the cgroup hook", () => {
          const r = vmRun(scen(B(), "connect-uring"));
          check(
            id,
            { hook: "connect", attach: "cgroup/connect4 (io_uring)", scenario: "connect-uring" },
            () => {
              expectVmRunOk(r);
              expect(r.scen.stdout).toContain("RESULT 0");
              const got = byKind.connect(r.workload);
              expect(got.map((e) => `${e.proto} ${e.family} ${e.addr} ${e.port}`)).toEqual([
                `tcp inet 127.0.0.1 ${P.tcp4}`,
              ]);
              expect(got[0]?.pid).toBe(r.rootPid);
              expect(got[0]?.comm).toBe("uring_connect");
              expect([0, null]).toContain(got[0]?.result);
            },
          );
        });

        it("connect via the fallback (DPNDNCY_FORCE_CONNECT_HOOK=tracepoint): TCP v4/v6/mapped, connected UDP, results", () => {
          const r = vmRun(scen(B(), "connect-tracepoint"));
          check(
            id,
            {
              hook: "connect",
              attach: "tracepoint/syscalls/sys_enter_connect",
              scenario: "connect-tracepoint",
            },
            () => {
              expectVmRunOk(r);
              expect(r.start?.attach?.connect).toBe("tracepoint/syscalls/sys_enter_connect");
              expectConnects(
                byKind.connect(r.workload),
                [
                  w("tcp", "inet", "127.0.0.1", P.tcp4, false, 0),
                  w("tcp", "inet6", "::1", P.tcp6, false, 0),
                  w("tcp", "inet-or-inet6", "127.0.0.1", P.tcp4, true, 0),
                  w("udp", "inet", "127.0.0.1", P.udp4, false, 0),
                  w("tcp", "inet", "127.0.0.1", P.tcp4nb, false, 0),
                  w("tcp", "inet", "127.0.0.1", 1, false, -ECONNREFUSED),
                ],
                r.rootPid as number,
              );
            },
          );
        });

        it("enforce mode (cgroup connect4/6 + sendmsg4/6 verdicts): learned names and CIDRs connect, the rest gets EPERM and a deny record with its rule", () => {
          const r = vmRun(scen(B(), "enforce"));
          check(
            id,
            {
              hook: "enforce",
              attach: "cgroup/connect4,connect6,sendmsg4,sendmsg6",
              scenario: "enforce",
            },
            () => {
              expectVmRunOk(r);
              expect(r.start?.mode).toBe("enforce");
              // the workload's own view: connected, or EPERM
              const got = Object.fromEntries(
                r.scen.stdout
                  .split("\n")
                  .map((l) => /^(OK|ERR (\d+)) (\S+)$/.exec(l))
                  .filter((m) => m !== null)
                  .map((m) => [m[3], m[2] === undefined ? 0 : Number(m[2])]),
              );
              expect(got, r.scen.stdout).toEqual(
                Object.fromEntries([
                  ...ENFORCE.map(([op, e]) => [op, e]),
                  ...RAW_SOCKS.map(([op]) => [op, EPERM]),
                ]),
              );
              // without the agent they opened
              expect(r.scen.files["free.txt"]?.toString()).toBe(
                RAW_SOCKS.map(([op]) => `OK ${op}\n`).join(""),
              );
              expect(r.scen.stdout).toContain("192.0.2.1"); // raw_dns printed the allowed answer
              const ev = byKind.connect(r.workload);
              for (const [op, , verdict, rule] of ENFORCE) {
                const [proto, rest] = op.split(/:(.*)/) as [string, string];
                const port = Number(rest.slice(rest.lastIndexOf(":") + 1));
                const addr = rest.slice(0, rest.lastIndexOf(":"));
                const recs = ev.filter(
                  (e) => e.addr === addr && e.port === port && e.proto === proto,
                );
                expect(recs.length, `connect records for ${op}`).toBeGreaterThanOrEqual(1);
                for (const e of recs) {
                  expect(e, op).toMatchObject({ verdict, rule, comm: "netclient" });
                  if (verdict === "deny") expect(e.result, op).toBe(-EPERM);
                }
              }
              // the DNS queries went to the sanctioned resolver, and were allowed as such
              const dnsq = ev.filter((e) => e.addr === "192.0.2.53" && e.port === 53);
              expect(dnsq.length).toBeGreaterThanOrEqual(2);
              for (const e of dnsq)
                expect(e).toMatchObject({ verdict: "allow", rule: "sanctioned-resolver" });
            },
          );
          // cgroup/sock_create: each raw or ICMP socket refused at socket(), one record each
          check(id, { hook: "enforce", attach: "cgroup/sock_create", scenario: "enforce" }, () => {
            const refused = byKind
              .connect(r.workload)
              .filter((e) => (e as { op?: string }).op === "socket");
            expect(
              refused.map((e) => [e.family, e.proto, e.addr, e.port, e.verdict, e.rule, e.result]),
            ).toEqual(
              RAW_SOCKS.map(([, family, proto, addr]) => [
                family,
                proto,
                addr,
                0,
                "deny",
                "raw-socket",
                -1,
              ]),
            );
            expect(new Set(refused.map((e) => e.comm))).toEqual(new Set(["netclient"]));
          });
        });

        it("enforce fails closed: start --mode enforce, SIGKILL of the agent, and the pinned programs still deny, refuse raw sockets and learn allowed names from DNS answers; stop removes it all", () => {
          const s = scen(B(), "fail-closed");
          check(
            id,
            {
              hook: "enforce",
              attach: "pinned, after SIGKILL (fail-closed)",
              scenario: "fail-closed",
            },
            () => {
              const f = (n: string) => s.files[n]?.toString("utf8") ?? "";
              expect(s.rc, s.stderr).toBe(0);
              expect(f("start.rc").trim(), f("start.stderr")).toBe("0");
              expect(f("cgroup"), f("start.json")).toMatch(/\/dpndncy-\d+\n$/);
              const res = (t: string) =>
                Object.fromEntries(
                  t
                    .split("\n")
                    .map((l) => /^(OK|ERR (\d+)) (\S+)$/.exec(l))
                    .filter((m) => m !== null)
                    .map((m) => [m[3], m[2] === undefined ? 0 : Number(m[2])]),
                );
              expect(res(f("before.txt")), f("before.txt")).toEqual(
                Object.fromEntries(FAIL_CLOSED.map(([op, e]) => [op, e])),
              );
              expect(s.files["agent-alive"], "the agent survived SIGKILL").toBeUndefined();
              expect(f("dns-after.txt")).toContain("192.0.2.1");
              expect(res(f("after.txt")), f("after.txt")).toEqual(
                Object.fromEntries(FAIL_CLOSED.map(([op, , e]) => [op, e])),
              );
              expect(f("stop.rc").trim(), `stop after SIGKILL: ${f("stop.stderr")}`).toBe("3");
              expect(s.files["cgroup-left"], "the enforced cgroup is left").toBeUndefined();
              expect(
                f("bpffs")
                  .split(/\s+/)
                  .filter((x) => x && x !== "." && x !== ".."),
                "pins left",
              ).toEqual([]);
            },
          );
        });

        it("tamper evidence: ptrace of the agent is caught by kprobes on the syscalls (no global syscall slow path) and by the tracepoint fallback, through x86's 32-bit entry too", () => {
          // x86 adds the programs for the ia32 entry (bpf/tamper.bpf.c); arm64 has none yet
          const ia32 = line.arch === "amd64";
          const cases: Array<[string, string]> = [
            [
              "tamper-ptrace",
              `ksyscall/ptrace,process_vm_readv,process_vm_writev${ia32 ? "+kprobe/security_ptrace_access_check(ia32)" : ""}`,
            ],
            [
              "tamper-ptrace-tp",
              `tracepoint/syscalls/sys_enter_ptrace,process_vm_readv,process_vm_writev${ia32 ? "+raw_tracepoint/sys_enter(ia32)" : ""}`,
            ],
          ];
          if (ia32)
            cases.push([
              "tamper-ptrace32",
              "ksyscall/ptrace,process_vm_readv,process_vm_writev+kprobe/security_ptrace_access_check(ia32)",
            ]);
          for (const [name, attach] of cases) {
            const r = vmRun(scen(B(), name));
            check(id, { hook: "tamper", attach, scenario: name }, () => {
              expect(r.scen.rc, r.scen.stderr).toBe(0);
              expect(r.log.errors).toEqual([]);
              expect(r.scen.stdout).toContain("attached and detached");
              expect(r.start?.attach?.tamper).toBe(attach);
              const t = r.log.events.filter((e) => e.kind === "tamper") as (Ev & {
                what: string;
                detail: string;
              })[];
              expect(t.map((e) => e.what)).toContain("ptrace");
              expect(t.find((e) => e.what === "ptrace")?.detail).toContain(
                `on the agent (pid ${r.agentPid})`,
              );
            });
          }
        });
      });

      if (id !== DEGRADED_LINE) continue;
      const did = `${id}-degraded`;
      const D = () => boots.get(did);
      describe(`${label}, without the BPF LSM and without BTF`, () => {
        beforeEach((ctx) => need(ctx, did));
        it("boots without the BPF LSM and runs every scenario", () => {
          expect(D()?.lsm.split(",")).not.toContain("bpf");
          expect(D()?.done, `the init did not finish:\n${D()?.console.slice(-3000)}`).toBe(true);
        });

        it("without the BPF LSM: probe says why lsm/file_open is out, the agent falls back to fentry with the same events, and a forced lsm hook is refused", () => {
          const s = scen(D(), "probe-nolsm");
          check(
            did,
            { hook: "file", attach: FILE_HOOKS.fentry, scenario: "probe-nolsm+file-auto" },
            () => {
              expect(s.rc, s.stderr).toBe(0);
              const p = JSON.parse(s.stdout) as Probe;
              const row = rows.get(did);
              if (row) row.probe = p;
              expect(p.hooks.file?.available?.[FILE_HOOKS.lsm]).toBe(false);
              expect(p.hooks.file?.unavailable[FILE_HOOKS.lsm]).toMatch(/\S/);
              expect(p.attach.file).toBe(FILE_HOOKS.fentry);
              const r = vmRun(scen(D(), "file-auto"));
              expectVmRunOk(r);
              expect(r.start?.attach?.file).toBe(FILE_HOOKS.fentry);
              expectFileEvents(r);
            },
          );
          check(did, { hook: "refusal", attach: "--file-hook lsm", scenario: "lsm-forced" }, () => {
            return expectRefused(scen(D(), "lsm-forced"), "run", /lsm/);
          });
        });

        it("a kernel without BTF (/sys/kernel/btf hidden, or DPNDNCY_BTF_PATH missing): probe and run refuse, naming BTF", () => {
          for (const name of ["nobtf-hidden", "nobtf-env"]) {
            const s = scen(D(), name);
            check(
              did,
              {
                hook: "refusal",
                attach:
                  name === "nobtf-env"
                    ? "DPNDNCY_BTF_PATH=/nonexistent"
                    : "no /sys/kernel/btf/vmlinux",
                scenario: name,
              },
              () => {
                expect(s.rc, s.stderr).toBe(0);
                const msg = expectRefused(s, "run", /BTF/);
                const rc = Number(s.files["probe.rc"]?.toString() ?? "NaN");
                expect(rc, "probe without BTF exits 1").toBe(1);
                const p = JSON.parse(s.files["probe.stdout"]?.toString() || "{}") as Partial<Probe>;
                expect(p.btf ?? false).toBe(false);
                return msg;
              },
            );
          }
        });
      });
    }

    it("the README's supported-kernels table is the one this run generates (DPNDNCY_UPDATE_README=1 rewrites it)", async (ctx) => {
      if (missing.length > 0 || bootErrors.size > 0) {
        need(ctx, [...bootErrors.keys()][0] ?? "");
      }
      if (lines.length !== Object.keys(PLAN).length) {
        throw new Error(
          "DPNDNCY_VM_KERNELS left kernels out: the README table can only be checked against a run of every kernel",
        );
      }
      const file = writeResults();
      const mode = process.env.DPNDNCY_UPDATE_README === "1" ? "--write" : "--check";
      const r = await run(
        [process.execPath, KERNEL_TABLE, "--results", file, "--no-host", mode, README],
        {
          timeoutMs: 60_000,
        },
      );
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    });
  },
);
