// Boots Debian's kernel under qemu (software emulation, one CPU, no network device) with an
// initramfs whose generated /init runs a list of scenarios one after the other and sends each
// scenario's files back over a second channel (x86_64: the second serial port ttyS1; arm64,
// whose `virt` machine has one UART: a virtio console, hvc0), written to a file on the host:
//
//   @@FILE <scenario>/<file>@@      then the file, base64, then
//   @@END@@                         and, once every scenario has run,
//   @@DONE@@
//
// The kernel's console (ttyS0 / ttyAMA0) stays separate, so kernel messages cannot tear the
// data. At most two VMs at a time on the machine (two lock slots in /tmp), whoever starts them:
// the machine has two vCPUs and each VM runs on one. DPNDNCY_VM_KEEP=DIR keeps every file that
// came back, and the console, under DIR/<boot>/ for a human to read.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DirLock } from "../dirlock.js";
import { buildInitramfs, type ImageFile } from "./initramfs.js";
import type { Arch, VmKernel } from "./kernel.js";
import { VM_BUILD } from "./paths.js";
import type { Workloads } from "./workloads.js";

export interface Scenario {
  /** [a-z0-9-]+; the scenario's files come back as <name>/<file> */
  name: string;
  /** sh script run as root in / with $OUT = the scenario's output directory */
  script: string;
  env?: Record<string, string>;
  /** seconds before busybox `timeout` kills it (default 90) */
  timeoutS?: number;
  /** only on kernels of this architecture (default: every one) */
  arch?: "amd64" | "arm64";
}

export interface ScenarioResult {
  name: string;
  /** exit status of the script (124/137 when `timeout` killed it), null when it never finished */
  rc: number | null;
  stdout: string;
  stderr: string;
  /** every file the scenario left in $OUT (stdout, stderr, rc included) */
  files: Record<string, Buffer>;
}

export interface BootSpec {
  /** names this boot in messages and file names */
  name: string;
  kernel: VmKernel;
  workloads: Workloads;
  /** static busybox and agent of the kernel's architecture */
  busybox: string;
  agent: string;
  /** extra kernel command line (e.g. lsm=...) */
  append?: string;
  /** run before the scenarios, in the init shell (servers in the background, ...) */
  setup?: string;
  scenarios: Scenario[];
  /** extra image files */
  files?: ImageFile[];
  timeoutMs?: number;
}

export interface BootResult {
  name: string;
  /** kernel release, LSM list and command line as seen inside the VM */
  release: string;
  lsm: string;
  cmdline: string;
  scenarios: Map<string, ScenarioResult>;
  /** the init reached the end of its list */
  done: boolean;
  console: string;
  /** wall time of the boot, from qemu start to qemu exit */
  ms: number;
  buildMs: number;
}

export const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Per architecture: the qemu binary, its machine, the console and the data channel. */
const QEMU: Record<
  Arch,
  { bin: string; console: string; data: string; args: (data: string) => string[] }
> = {
  amd64: {
    bin: "qemu-system-x86_64",
    console: "ttyS0",
    data: "/dev/ttyS1",
    args: (data) => [
      "-machine",
      "pc",
      "-cpu",
      "max",
      "-serial",
      "stdio",
      "-serial",
      `file:${data}`,
    ],
  },
  arm64: {
    bin: "qemu-system-aarch64",
    console: "ttyAMA0",
    data: "/dev/hvc0",
    args: (data) => [
      "-machine",
      "virt",
      "-cpu",
      // every feature qemu emulates, but pointer authentication with qemu's cheap hash instead of
      // the architected QARMA: Debian's arm64 kernel signs return addresses in every function,
      // and emulating QARMA for each makes the boot several times slower under TCG
      "max,pauth-impdef=on",
      "-serial",
      "stdio",
      "-device",
      "virtio-serial-pci",
      "-chardev",
      `file,id=data,path=${data}`,
      "-device",
      "virtconsole,chardev=data",
    ],
  },
};

function initScript(spec: BootSpec): string {
  const data = QEMU[spec.kernel.line.arch].data;
  const lines = [
    "#!/bin/busybox sh",
    "/bin/busybox --install -s /bin",
    "export PATH=/opt/w:/bin:/sbin HOME=/root",
    "mount -t proc proc /proc",
    "mount -t sysfs sys /sys",
    "mount -t devtmpfs dev /dev",
    "mount -t tmpfs tmp /tmp",
    "mount -t securityfs none /sys/kernel/security 2>/dev/null",
    "ip link set lo up",
    `stty -F ${data} raw -echo 2>/dev/null`,
    `exec 3>${data}`,
    "emit() {",
    '  for f in /out/$1/*; do echo "@@FILE $1/$(basename "$f")@@" >&3; base64 "$f" >&3; echo "@@END@@" >&3; done',
    "}",
    "mkdir -p /out/boot",
    "uname -r > /out/boot/release",
    "cat /sys/kernel/security/lsm > /out/boot/lsm 2>/dev/null",
    "cat /proc/cmdline > /out/boot/cmdline",
    "emit boot",
    spec.setup ?? "",
  ];
  for (const s of spec.scenarios) {
    if (!/^[a-z0-9-]+$/.test(s.name)) throw new Error(`bad scenario name ${s.name}`);
    const env = Object.entries(s.env ?? {})
      .map(([k, v]) => `export ${k}=${sq(v)}; `)
      .join("");
    lines.push(
      `echo "@@SCENARIO ${s.name}@@"`,
      `mkdir -p /out/${s.name}`,
      `( cd /; export OUT=/out/${s.name}; ${env}exec timeout ${s.timeoutS ?? 90} sh -c ${sq(s.script)} ) >/out/${s.name}/stdout 2>/out/${s.name}/stderr </dev/null`,
      `echo $? > /out/${s.name}/rc`,
      `emit ${s.name}`,
    );
  }
  lines.push('echo "@@DONE@@" >&3', "exec 3>&-", "sync", "poweroff -f", "");
  return lines.join("\n");
}

/** Splits the data channel into scenario results. */
export function parseData(data: string): {
  files: Map<string, Map<string, Buffer>>;
  done: boolean;
} {
  const files = new Map<string, Map<string, Buffer>>();
  let cur: { scen: string; file: string; b64: string[] } | undefined;
  let done = false;
  for (const raw of data.split("\n")) {
    const line = raw.replace(/\r$/, "");
    const m = /^@@FILE ([a-z0-9-]+)\/(.+)@@$/.exec(line);
    if (m) {
      cur = { scen: m[1] as string, file: m[2] as string, b64: [] };
    } else if (line === "@@END@@" && cur) {
      const f = files.get(cur.scen) ?? new Map<string, Buffer>();
      f.set(cur.file, Buffer.from(cur.b64.join(""), "base64"));
      files.set(cur.scen, f);
      cur = undefined;
    } else if (line === "@@DONE@@") {
      done = true;
    } else if (cur) {
      cur.b64.push(line);
    }
  }
  return { files, done };
}

// slot 0 keeps the name of the single lock older checkouts take, so they count against the two
const LOCKS = ["/tmp/dpndncy-vm.lock", "/tmp/dpndncy-vm.lock.1"];
let lockSeq = 0;

async function withVmLock<T>(fn: () => Promise<T>, waitMs = 20 * 60_000): Promise<T> {
  const deadline = Date.now() + waitMs;
  let told = false;
  const slots = LOCKS.map((p) => new DirLock(p, `vm-${lockSeq++}`));
  let mine: DirLock | undefined;
  for (;;) {
    let owners = "";
    for (const l of slots) {
      const t = l.tryTake();
      if (t.taken) {
        mine = l;
        break;
      }
      owners += ` ${t.owner || "?"}`;
    }
    if (mine) break;
    if (Date.now() > deadline)
      throw new Error(`VM lock slots ${LOCKS.join(", ")} held too long (${owners.trim()})`);
    if (!told) {
      console.warn(`vm: waiting for a VM slot (${LOCKS.join(", ")} held by${owners})`);
      told = true;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  try {
    return await fn();
  } finally {
    mine.release();
  }
}

/** Builds the image, boots it, runs the scenarios, returns what came back. */
export async function bootScenarios(spec: BootSpec): Promise<BootResult> {
  const t0 = Date.now();
  mkdirSync(VM_BUILD, { recursive: true });
  const work = mkdtempSync(join(VM_BUILD, `.boot-${spec.name}-`));
  try {
    const files: ImageFile[] = [
      { path: "/bin/busybox", from: spec.busybox },
      { path: "/bin/dpndncy-agent", from: spec.agent },
      ...Object.entries(spec.workloads.bins).map(([path, from]) => ({ path, from })),
      ...Object.entries(spec.workloads.libs).map(([path, from]) => ({ path, from })),
      { path: "/etc/passwd", content: "root:x:0:0:root:/root:/bin/sh\n" },
      { path: "/etc/group", content: "root:x:0:\n" },
      { path: "/etc/hosts", content: "127.0.0.1 localhost\n::1 localhost\n" },
      { path: "/etc/nsswitch.conf", content: "hosts: files dns\n" },
      { path: "/etc/resolv.conf", content: "nameserver 127.0.0.1\noptions timeout:2 attempts:1\n" },
      ...(spec.files ?? []),
      { path: "/init", content: initScript(spec), mode: 0o755 },
    ];
    const initrd = await buildInitramfs(files, join(work, "initrd.gz"));
    const buildMs = Date.now() - t0;
    const dataPath = join(work, "data.txt");
    const q = QEMU[spec.kernel.line.arch];
    const append = [`console=${q.console}`, "panic=-1", "quiet", "loglevel=4", spec.append ?? ""]
      .join(" ")
      .trim();
    const args = [
      "-nodefaults",
      "-no-reboot",
      "-display",
      "none",
      ...q.args(dataPath),
      "-smp",
      "1",
      "-m",
      "512M",
      "-nic",
      "none",
      "-kernel",
      spec.kernel.vmlinuz,
      "-initrd",
      initrd,
      "-append",
      append,
    ];
    const timeoutMs = spec.timeoutMs ?? 240_000;
    return await withVmLock(async () => {
      const b0 = Date.now();
      const consoleOut = await new Promise<{
        text: string;
        timedOut: boolean;
        code: number | null;
      }>((resolve, reject) => {
        const child = spawn(q.bin, args, { stdio: ["ignore", "pipe", "pipe"] });
        const out: Buffer[] = [];
        child.stdout.on("data", (b: Buffer) => out.push(b));
        child.stderr.on("data", (b: Buffer) => out.push(b));
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill("SIGKILL");
        }, timeoutMs);
        child.on("error", (e) => {
          clearTimeout(timer);
          reject(new Error(`cannot start ${q.bin}: ${e.message}`));
        });
        child.on("close", (code) => {
          clearTimeout(timer);
          resolve({ text: Buffer.concat(out).toString("utf8"), timedOut, code });
        });
      });
      const ms = Date.now() - b0;
      let data = "";
      try {
        data = readFileSync(dataPath, "latin1");
      } catch {}
      const parsed = parseData(data);
      const text = consoleOut.text;
      if (consoleOut.timedOut) {
        throw new Error(
          `VM "${spec.name}" timed out after ${timeoutMs} ms; console tail:\n${text.slice(-4000)}`,
        );
      }
      const str = (s: string, f: string) => parsed.files.get(s)?.get(f)?.toString("utf8") ?? "";
      const scenarios = new Map<string, ScenarioResult>();
      for (const s of spec.scenarios) {
        const f = parsed.files.get(s.name);
        const rc = str(s.name, "rc").trim();
        scenarios.set(s.name, {
          name: s.name,
          rc: f && rc !== "" ? Number(rc) : null,
          stdout: str(s.name, "stdout"),
          stderr: str(s.name, "stderr"),
          files: Object.fromEntries(f ?? []),
        });
      }
      const keep = process.env.DPNDNCY_VM_KEEP;
      if (keep) {
        // for a human: every file that came back, and the console, under $DPNDNCY_VM_KEEP/<boot>/
        const dir = join(keep, spec.name);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "console.txt"), text);
        for (const [scen, fs] of parsed.files) {
          mkdirSync(join(dir, scen), { recursive: true });
          for (const [f, b] of fs) writeFileSync(join(dir, scen, f), b);
        }
      }
      return {
        name: spec.name,
        release: str("boot", "release").trim(),
        lsm: str("boot", "lsm").trim(),
        cmdline: str("boot", "cmdline").trim(),
        scenarios,
        done: parsed.done,
        console: text,
        ms,
        buildMs,
      };
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
