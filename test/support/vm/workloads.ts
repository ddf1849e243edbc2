// The VM's workloads, compiled on the host: static C programs for file, connect and packet DNS
// workloads and the in-VM servers, plus one DYNAMICALLY linked getaddrinfo program so that
// the agent's libc uprobe has something to see (the host's libc.so.6 and ld.so go into the
// image with it).
import { closeSync, existsSync, mkdirSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES } from "../kernel/env.js";
import { run, runOk } from "../kernel/proc.js";
import { type Arch, hostArch } from "./kernel.js";
import { VM_BUILD, WORKLOAD_SRC } from "./paths.js";

export interface Workloads {
  /** image path (/opt/w/NAME) -> host path */
  bins: Record<string, string>;
  /** shared objects the dynamic workload needs: image path -> host path */
  libs: Record<string, string>;
}

const STATIC = ["fileops", "netclient", "vmserve"];

/** The C compiler for `arch`: the host's gcc, or Debian's cross compiler for arm64. */
export function ccFor(arch: Arch): string {
  return arch === hostArch() ? "gcc" : "aarch64-linux-gnu-gcc";
}

/** Compiles every workload for `arch` into build/vm/bin-<arch>/ (a second or two). */
export async function buildWorkloads(arch: Arch = hostArch()): Promise<Workloads> {
  const out = join(VM_BUILD, `bin-${arch}`);
  mkdirSync(out, { recursive: true });
  const gcc = ccFor(arch);
  const cc = (src: string, name: string, extra: string[]) =>
    runOk([gcc, "-O2", "-Wall", "-Werror", ...extra, src, "-o", join(out, name)], {
      timeoutMs: 120_000,
    });
  await Promise.all([
    ...STATIC.map((n) => cc(join(WORKLOAD_SRC, `${n}.c`), n, ["-static"])),
    // the host suite's libc-bypassing DNS client, under the same name (its comm is asserted)
    cc(join(FIXTURES, "raw_dns.c"), "raw_dns-static", ["-static"]),
    cc(join(FIXTURES, "uring_connect.c"), "uring_connect", ["-static"]),
    cc(join(FIXTURES, "tamper_ptrace.c"), "tamper_ptrace", ["-static"]),
    // int 0x80: the x86 32-bit entry only
    ...(arch === "amd64"
      ? [cc(join(FIXTURES, "tamper_ptrace32.c"), "tamper_ptrace32", ["-static"])]
      : []),
    cc(join(WORKLOAD_SRC, "gai.c"), "gai", []),
  ]);
  const bins: Record<string, string> = {};
  for (const n of [
    ...STATIC,
    "raw_dns-static",
    "uring_connect",
    "tamper_ptrace",
    ...(arch === "amd64" ? ["tamper_ptrace32"] : []),
    "gai",
  ])
    bins[`/opt/w/${n}`] = join(out, n);
  const libs =
    arch === hostArch() ? await sharedObjects(join(out, "gai")) : await crossSharedObjects(gcc);
  return { bins, libs };
}

/** `ldd BIN`: the libraries (and the interpreter) at the paths the binary will look for them. */
async function sharedObjects(bin: string): Promise<Record<string, string>> {
  const r = await run(["ldd", bin]);
  if (r.code !== 0) throw new Error(`ldd ${bin} failed: ${r.stderr}`);
  const libs: Record<string, string> = {};
  for (const line of r.stdout.split("\n")) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs[m[1]] = m[1];
  }
  if (!Object.keys(libs).some((p) => p.includes("libc.so"))) {
    throw new Error(`ldd ${bin} names no libc.so:\n${r.stdout}`);
  }
  return libs;
}

/**
 * The cross libc (libc6-arm64-cross) for the dynamic workload: no ldd for a foreign binary, so
 * the loader goes where its PT_INTERP says (/lib/ld-linux-aarch64.so.1) and libc.so.6 into the
 * multiarch directory the loader searches.
 */
async function crossSharedObjects(gcc: string): Promise<Record<string, string>> {
  const where = async (f: string) => {
    const r = await run([gcc, `-print-file-name=${f}`]);
    const p = r.stdout.trim();
    if (r.code !== 0 || !p.startsWith("/") || !existsSync(p)) {
      throw new Error(`${gcc} cannot find ${f} (install libc6-dev-arm64-cross): ${r.stderr}`);
    }
    return p;
  };
  const [libc, ld] = await Promise.all([where("libc.so.6"), where("ld-linux-aarch64.so.1")]);
  return {
    "/lib/ld-linux-aarch64.so.1": ld,
    "/lib/aarch64-linux-gnu/libc.so.6": libc,
  };
}

/** True when the ELF file has no PT_INTERP: it runs without a dynamic loader. */
export function isStaticElf(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const h = Buffer.alloc(64);
    readSync(fd, h, 0, 64, 0);
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2) return false; // ELF64 only
    const phoff = Number(h.readBigUInt64LE(32));
    const phentsize = h.readUInt16LE(54);
    const phnum = h.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 3) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}

const EM: Record<number, Arch> = { 62: "amd64", 183: "arm64" };

/** The architecture an ELF file is built for (e_machine), undefined when not ELF or unknown. */
export function elfArch(path: string): Arch | undefined {
  const fd = openSync(path, "r");
  try {
    const h = Buffer.alloc(20);
    readSync(fd, h, 0, 20, 0);
    if (h.readUInt32BE(0) !== 0x7f454c46) return undefined;
    return EM[h.readUInt16LE(18)];
  } finally {
    closeSync(fd);
  }
}
