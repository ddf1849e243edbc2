// Debian's 6.1 cloud kernel for the VM matrix: found with apt-cache, fetched with
// `apt-get download`, unpacked with `dpkg-deb -x`, and cached under build/vm/kernels/<package>/
// (only boot/: vmlinuz, config, System.map). A cached kernel is reused without touching the
// network. When none is cached and none can be fetched, this throws with what went wrong:
// the matrix is never skipped silently.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { run } from "../kernel/proc.js";
import { VM_BUILD } from "./paths.js";

export const KERNEL_CACHE = join(VM_BUILD, "kernels");
/** Debian's unsigned cloud flavour: small, virtio and serial built in, BTF, BPF LSM. */
const PKG_RE = /^linux-image-6\.1\.0-(\d+)-cloud-amd64-unsigned$/;
const DONE = ".complete";

export interface VmKernel {
  /** the Debian package, e.g. linux-image-6.1.0-50-cloud-amd64-unsigned */
  pkg: string;
  /** the package version, e.g. 6.1.176-1 */
  pkgVersion: string;
  /** the kernel release (uname -r), e.g. 6.1.0-50-cloud-amd64 */
  release: string;
  vmlinuz: string;
  config: string;
  /** true when this call downloaded it */
  fetched: boolean;
}

function abi(pkg: string): number {
  return Number(PKG_RE.exec(pkg)?.[1] ?? -1);
}

function cached(pkg: string): VmKernel | undefined {
  const dir = join(KERNEL_CACHE, pkg);
  if (!existsSync(join(dir, DONE))) return undefined;
  const boot = join(dir, "boot");
  const vmlinuz = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"));
  if (vmlinuz === undefined) return undefined;
  const release = vmlinuz.slice("vmlinuz-".length);
  const meta = JSON.parse(readFileSync(join(dir, DONE), "utf8")) as { version?: string };
  return {
    pkg,
    pkgVersion: meta.version ?? "?",
    release,
    vmlinuz: join(boot, vmlinuz),
    config: join(boot, `config-${release}`),
    fetched: false,
  };
}

/** Packages apt knows, newest ABI first. */
async function candidates(): Promise<string[]> {
  const r = await run(
    ["apt-cache", "search", "--names-only", "^linux-image-6\\.1\\.0-.*-cloud-amd64-unsigned$"],
    {
      timeoutMs: 60_000,
    },
  );
  if (r.code !== 0) throw new Error(`apt-cache search failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((p) => PKG_RE.test(p))
    .sort((a, b) => abi(b) - abi(a));
}

async function fetchOne(pkg: string): Promise<VmKernel> {
  mkdirSync(KERNEL_CACHE, { recursive: true });
  const tmp = mkdtempSync(join(KERNEL_CACHE, ".fetch-"));
  try {
    const dl = await run(["apt-get", "download", "-q", pkg], { cwd: tmp, timeoutMs: 300_000 });
    const deb = readdirSync(tmp).find((f) => f.endsWith(".deb"));
    if (dl.code !== 0 || deb === undefined) {
      throw new Error(`apt-get download ${pkg} failed (exit ${dl.code}): ${dl.stderr.trim()}`);
    }
    const version = decodeURIComponent(deb.split("_")[1] ?? "?");
    const x = join(tmp, "x");
    const ex = await run(["dpkg-deb", "-x", join(tmp, deb), x], { timeoutMs: 120_000 });
    if (ex.code !== 0) throw new Error(`dpkg-deb -x ${deb} failed: ${ex.stderr.trim()}`);
    const out = join(tmp, "out");
    mkdirSync(out);
    renameSync(join(x, "boot"), join(out, "boot"));
    writeFileSync(join(out, DONE), `${JSON.stringify({ pkg, version, deb })}\n`);
    const dest = join(KERNEL_CACHE, pkg);
    rmSync(dest, { recursive: true, force: true });
    renameSync(out, dest);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const k = cached(pkg);
  if (k === undefined) throw new Error(`${pkg}: no boot/vmlinuz-* in the package`);
  return { ...k, fetched: true };
}

/**
 * The kernel to boot: DPNDNCY_VM_KERNEL_PKG if set, else the newest one cached, else the
 * newest one apt can download (older ABIs are tried when a download fails).
 */
export async function ensureKernel(): Promise<VmKernel> {
  const pinned = process.env.DPNDNCY_VM_KERNEL_PKG;
  const errors: string[] = [];
  if (pinned) {
    const k = cached(pinned);
    if (k) return k;
    try {
      return await fetchOne(pinned);
    } catch (e) {
      throw cannotFetch([`DPNDNCY_VM_KERNEL_PKG=${pinned}: ${(e as Error).message}`]);
    }
  }
  if (existsSync(KERNEL_CACHE)) {
    const have = readdirSync(KERNEL_CACHE)
      .filter((p) => PKG_RE.test(p))
      .sort((a, b) => abi(b) - abi(a));
    for (const p of have) {
      const k = cached(p);
      if (k) return k;
    }
  }
  let list: string[] = [];
  try {
    list = await candidates();
  } catch (e) {
    errors.push((e as Error).message);
  }
  if (list.length === 0 && errors.length === 0) {
    errors.push(
      "apt-cache knows no linux-image-6.1.0-*-cloud-amd64-unsigned package (a Debian 12 apt source and `apt-get update` are needed)",
    );
  }
  for (const pkg of list.slice(0, 3)) {
    try {
      return await fetchOne(pkg);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  throw cannotFetch(errors);
}

function cannotFetch(errors: string[]): Error {
  return new Error(
    `cannot fetch Debian's 6.1 cloud kernel for the VM matrix into ${KERNEL_CACHE}:\n  - ${errors.join("\n  - ")}\n` +
      "Fix apt (or put an unpacked package there, or set DPNDNCY_VM_KERNEL_PKG), or set DPNDNCY_SKIP_KERNEL_TESTS=1 to skip the kernel tests.",
  );
}
