// The kernel matrix: Debian's 6.1 cloud kernel booted under qemu (software emulation, one CPU,
// no network device), the static agent and the workloads in an initramfs, and the same
// workloads and assertions as the host suite (file.test.ts, dns.test.ts, connect.test.ts,
// badinput.test.ts) for every attach point our 6.18 machines lack: the file hook forced to
// lsm, fentry, kprobe and tracepoint; DNS through the getaddrinfo uprobe and through packets;
// connect through cgroup sock_addr and the syscall-tracepoint fallback. A second boot takes the
// BPF LSM away (the agent must fall back) and hides the BTF (the agent must refuse, naming it).
// Two boots in all; the timings are printed and written to build/vm/results.json with the
// per-attach-point results that scripts/kernel-table.mjs turns into the README table.
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import { byKind, type ConnectEv, type DnsEv, type Ev, type FileEv } from "../support/kernel/log.js";
import { expectVmRunOk, type VmRun, vmRun } from "../support/vm/agentlog.js";
import { ensureKernel, type VmKernel } from "../support/vm/kernel.js";
import { type Check, type KernelResult, Results } from "../support/vm/results.js";
import { describeVm, skipRequested } from "../support/vm/suite.js";
import {
  type BootResult,
  type BootSpec,
  bootScenarios,
  type Scenario,
  type ScenarioResult,
  sq,
} from "../support/vm/vm.js";
import { buildWorkloads, type Workloads } from "../support/vm/workloads.js";

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
const ENFORCE_OPS = ENFORCE.map(([op]) => op);

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
  // the same through the 32-bit syscall entry (int 0x80): kprobe on security_ptrace_access_check
  { name: "tamper-ptrace32", script: agentRunCmd("", "tamper_ptrace32 $PPID; sleep 1.5") },
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
describeVm("kernel matrix: Debian 6.1 under qemu", (missing) => {
  const results = new Results();
  let kernel: VmKernel | undefined;
  let setupError: Error | undefined;
  let skipTold = false;
  let full: BootResult | undefined;
  let degraded: BootResult | undefined;
  const timings: Record<string, number> = {};
  const rows: Record<string, KernelResult> = {};

  beforeAll(async () => {
    if (missing.length > 0) return;
    try {
      let t = Date.now();
      let workloads: Workloads;
      [kernel, workloads] = await Promise.all([ensureKernel(), buildWorkloads()]);
      timings.prepare_ms = Date.now() - t;
      const base = (name: string, append: string, scenarios: Scenario[]): BootSpec => ({
        name,
        kernel: kernel as VmKernel,
        workloads,
        append,
        setup: SETUP,
        files: IMAGE_FILES,
        scenarios,
      });
      t = Date.now();
      full = await bootScenarios(
        base("full", "lsm=landlock,lockdown,yama,apparmor,bpf", FULL_SCENARIOS),
      );
      timings.full_ms = Date.now() - t;
      t = Date.now();
      degraded = await bootScenarios(base("degraded", NO_BPF_LSM, DEGRADED_SCENARIOS));
      timings.degraded_ms = Date.now() - t;
      const k = kernel;
      const how = (b: BootResult) =>
        `Debian ${k.pkg} ${k.pkgVersion}, qemu TCG, -append '${b.cmdline}'`;
      rows.full = results.kernel("full", () => ({
        kernel: full?.release ?? k.release,
        how: how(full as BootResult),
        lsm: full?.lsm,
        boot_ms: full?.ms,
      }));
      rows.degraded = results.kernel("degraded", () => ({
        kernel: degraded?.release ?? k.release,
        how: how(degraded as BootResult),
        lsm: degraded?.lsm,
        boot_ms: degraded?.ms,
      }));
      console.log(
        `vm matrix: ${k.pkg} ${k.pkgVersion}${k.fetched ? " (downloaded)" : " (cached)"}; ` +
          `kernel+workloads ${timings.prepare_ms} ms; boot "full" ${timings.full_ms} ms ` +
          `(qemu ${full.ms} ms, ${FULL_SCENARIOS.length} scenarios); boot "degraded" ` +
          `${timings.degraded_ms} ms (qemu ${degraded.ms} ms, ${DEGRADED_SCENARIOS.length} scenarios)`,
      );
    } catch (e) {
      setupError = e as Error;
    }
  }, 30 * 60_000);

  beforeEach((ctx) => {
    if (missing.length > 0) {
      throw new Error(
        `VM matrix prerequisites missing (set DPNDNCY_SKIP_KERNEL_TESTS=1 to skip instead):\n  - ${missing.join("\n  - ")}`,
      );
    }
    if (setupError !== undefined) {
      if (skipRequested()) {
        if (!skipTold) {
          console.warn(
            `SKIPPED the VM matrix (DPNDNCY_SKIP_KERNEL_TESTS=1) because: ${setupError.message}`,
          );
          skipTold = true;
        }
        ctx.skip();
      }
      throw setupError;
    }
  });

  afterAll(() => {
    if (full === undefined && degraded === undefined) return;
    let agent = "?";
    try {
      const p = JSON.parse(full?.scenarios.get("probe")?.stdout ?? "") as Record<string, string>;
      agent = `${p.version} (${p.commit})`;
    } catch {}
    const file = results.write({ agent, timings });
    console.log(
      `vm matrix: total ${Date.now() - results.started} ms; results in ${file} ` +
        "(`node scripts/kernel-table.mjs` prints the README table)",
    );
  });

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
    results.check(rows[row], c, fn);

  it("boots Debian's 6.1 kernel with the BPF LSM on the list and runs every scenario", () => {
    expect(full?.release).toBe(kernel?.release);
    expect(full?.release).toMatch(/^6\.1\.0-\d+-cloud-amd64$/);
    expect(full?.lsm.split(",")).toContain("bpf");
    expect(full?.done, `the init did not finish:\n${full?.console.slice(-3000)}`).toBe(true);
    expect(degraded?.lsm.split(",")).not.toContain("bpf");
    expect(degraded?.done, `the init did not finish:\n${degraded?.console.slice(-3000)}`).toBe(
      true,
    );
  });

  it("probe: every attach point of every hook is available (file: lsm, fentry, kprobe, tracepoint)", () => {
    const s = scen(full, "probe");
    check("full", { hook: "probe", attach: "all", scenario: "probe" }, () => {
      expect(s.rc, s.stderr).toBe(0);
      const p = JSON.parse(s.stdout) as Probe;
      if (rows.full) rows.full.probe = p;
      expect(p.kernel).toBe(full?.release);
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
      const r = vmRun(scen(full, `file-${hook}`));
      check("full", { hook: "file", attach: FILE_HOOKS[hook], scenario: `file-${hook}` }, () => {
        expectVmRunOk(r);
        expect(r.start?.attach?.file).toBe(FILE_HOOKS[hook]);
        expectFileEvents(r);
      });
      if (hook === "lsm") {
        // the exec hook, on the same run: every process of the workload with its parent and exit
        check(
          "full",
          { hook: "exec", attach: r.start?.attach?.exec ?? "?", scenario: "file-lsm" },
          () => {
            const execs = byKind.exec(r.workload);
            const exits = byKind.exit(r.workload);
            const cats = execs.filter((e) => e.argv[0] === "cat");
            // cat x3 + link + ../ + /proc/$$/environ + /proc/self/environ
            expect(cats).toHaveLength(7);
            for (const c of cats) {
              expect(c.ppid).toBe(r.rootPid);
              expect(exits.find((x) => x.pid === c.pid)?.code, `exit of ${c.argv.join(" ")}`).toBe(
                0,
              );
            }
            expect(exits.find((x) => x.pid === r.rootPid)?.code).toBe(0);
          },
        );
      }
    });
  }

  it("DNS via the getaddrinfo uprobe (dynamic glibc program): source libc, exact names, qtypes, answers, pid", () => {
    const r = vmRun(scen(full, "dns-libc"));
    check("full", { hook: "dns", attach: "uprobe/getaddrinfo", scenario: "dns-libc" }, () => {
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
    const r = vmRun(scen(full, "dns-packet"));
    check("full", { hook: "dns", attach: "cgroup_skb/ingress", scenario: "dns-packet" }, () => {
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
    const q = scen(full, "servers").stdout;
    for (const line of [
      "QUERY udp gai-v4.dpndncy.test A",
      "QUERY udp gai-v6.dpndncy.test AAAA",
      "QUERY udp raw-a.dpndncy.test A",
    ]) {
      expect(q).toContain(line);
    }
  });

  it("connect via cgroup connect4/6 + sendmsg4/6 (results from the syscall tracepoints, as on the host): TCP/UDP v4, v6, mapped, refused", () => {
    const r = vmRun(scen(full, "connect-cgroup"));
    check(
      "full",
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
    const r = vmRun(scen(full, "connect-cgroup-kprobe"));
    check(
      "full",
      {
        hook: "connect",
        attach: "cgroup/connect4,connect6,sendmsg4,sendmsg6 + kretsyscall/connect",
        scenario: "connect-cgroup-kprobe",
      },
      () => {
        expectVmRunOk(r);
        expect(r.start?.attach?.connect).toBe("cgroup/connect4,connect6,sendmsg4,sendmsg6");
        expect(r.start?.attach?.connect_result).toBe(
          "kretsyscall/connect+tracepoint/sock/inet_sock_set_state",
        );
        expect(r.scen.stdout).toContain(`ERR ${ECONNREFUSED} tcpfail:127.0.0.1:1`);
        expectConnects(byKind.connect(r.workload), cgroupWant(true), r.rootPid as number);
      },
    );
  });

  it("connect via cgroup hooks without any result hook (DPNDNCY_NO_CONNECT_RESULT=1): same events, results unknown", () => {
    const r = vmRun(scen(full, "connect-cgroup-noresult"));
    check(
      "full",
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
    const r = vmRun(scen(full, "connect-uring"));
    check(
      "full",
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
    const r = vmRun(scen(full, "connect-tracepoint"));
    check(
      "full",
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
    const r = vmRun(scen(full, "enforce"));
    check(
      "full",
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
        expect(got, r.scen.stdout).toEqual(Object.fromEntries(ENFORCE.map(([op, e]) => [op, e])));
        expect(r.scen.stdout).toContain("192.0.2.1"); // raw_dns printed the allowed answer
        const ev = byKind.connect(r.workload);
        for (const [op, , verdict, rule] of ENFORCE) {
          const [proto, rest] = op.split(/:(.*)/) as [string, string];
          const port = Number(rest.slice(rest.lastIndexOf(":") + 1));
          const addr = rest.slice(0, rest.lastIndexOf(":"));
          const recs = ev.filter((e) => e.addr === addr && e.port === port && e.proto === proto);
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
  });

  it("tamper evidence: ptrace of the agent is caught by kprobes on the syscalls (no global syscall slow path) and by the tracepoint fallback, through the 32-bit syscall entry too", () => {
    for (const [name, attach] of [
      [
        "tamper-ptrace",
        "ksyscall/ptrace,process_vm_readv,process_vm_writev+kprobe/security_ptrace_access_check(ia32)",
      ],
      [
        "tamper-ptrace32",
        "ksyscall/ptrace,process_vm_readv,process_vm_writev+kprobe/security_ptrace_access_check(ia32)",
      ],
      [
        "tamper-ptrace-tp",
        "tracepoint/syscalls/sys_enter_ptrace,process_vm_readv,process_vm_writev+raw_tracepoint/sys_enter(ia32)",
      ],
    ] as const) {
      const r = vmRun(scen(full, name));
      check("full", { hook: "tamper", attach, scenario: name }, () => {
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

  it("without the BPF LSM: probe says why lsm/file_open is out, the agent falls back to fentry with the same events, and a forced lsm hook is refused", () => {
    const s = scen(degraded, "probe-nolsm");
    check(
      "degraded",
      { hook: "file", attach: FILE_HOOKS.fentry, scenario: "probe-nolsm+file-auto" },
      () => {
        expect(s.rc, s.stderr).toBe(0);
        const p = JSON.parse(s.stdout) as Probe;
        if (rows.degraded) rows.degraded.probe = p;
        expect(p.hooks.file?.available?.[FILE_HOOKS.lsm]).toBe(false);
        expect(p.hooks.file?.unavailable[FILE_HOOKS.lsm]).toMatch(/\S/);
        expect(p.attach.file).toBe(FILE_HOOKS.fentry);
        const r = vmRun(scen(degraded, "file-auto"));
        expectVmRunOk(r);
        expect(r.start?.attach?.file).toBe(FILE_HOOKS.fentry);
        expectFileEvents(r);
      },
    );
    check(
      "degraded",
      { hook: "refusal", attach: "--file-hook lsm", scenario: "lsm-forced" },
      () => {
        return expectRefused(scen(degraded, "lsm-forced"), "run", /lsm/);
      },
    );
  });

  it("a kernel without BTF (/sys/kernel/btf hidden, or DPNDNCY_BTF_PATH missing): probe and run refuse, naming BTF", () => {
    for (const name of ["nobtf-hidden", "nobtf-env"]) {
      const s = scen(degraded, name);
      check(
        "degraded",
        {
          hook: "refusal",
          attach:
            name === "nobtf-env" ? "DPNDNCY_BTF_PATH=/nonexistent" : "no /sys/kernel/btf/vmlinux",
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
