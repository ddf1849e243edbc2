// Debian's cloud kernels for the VM matrix (and the arm64 busybox it needs): found and fetched
// with apt through a PRIVATE configuration (its own sources list naming bullseye, bookworm,
// bookworm-backports and trixie, its own package lists, both architectures), never the
// system's sources.list; unpacked with `dpkg-deb -x`, and kept in a cache shared by every
// worktree: $DPNDNCY_KERNEL_CACHE, else $XDG_CACHE_HOME/dpndncy-kernels, else
// ~/.cache/dpndncy-kernels (build/vm/kernels when that cannot be created). Only boot/ (vmlinuz,
// config) or the asked-for files are kept. A cached package is reused without touching the
// network; a cache miss downloads. When a kernel can be neither found in the cache nor
// downloaded this throws with what went wrong: the matrix is never skipped silently.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { DirLock } from "../dirlock.js";
import { run } from "../kernel/proc.js";
import { VM_BUILD } from "./paths.js";

export type Arch = "amd64" | "arm64";

/** A kernel line the matrix boots: which Debian packages qualify, newest first. */
export interface KernelLine {
  /** e.g. "6.1-amd64"; names the boot, the README row and DPNDNCY_VM_KERNELS entries */
  id: string;
  arch: Arch;
  /** "5.10", "6.1", "6.12" */
  series: string;
  /** the Debian suite that has it, for messages and the README */
  suite: string;
  /** package name -> sort key (bigger is newer), undefined when it is not of this line */
  match: (pkg: string) => number | undefined;
}

const abiLine = (series: string, arch: Arch, suite: string): KernelLine => {
  const re = new RegExp(
    `^linux-image-${series.replace(".", "\\.")}\\.0-(\\d+)-cloud-${arch}-unsigned$`,
  );
  return {
    id: `${series}-${arch}`,
    arch,
    series,
    suite,
    match: (p) => (re.test(p) ? Number(re.exec(p)?.[1]) : undefined),
  };
};
const upstreamLine = (series: string, arch: Arch, suite: string): KernelLine => {
  // 6.12.N+debXX: bookworm-backports (+deb12) and trixie (+deb13) both have it; newest N first
  const re = new RegExp(
    `^linux-image-${series.replace(".", "\\.")}\\.(\\d+)\\+deb(\\d+)-cloud-${arch}-unsigned$`,
  );
  return {
    id: `${series}-${arch}`,
    arch,
    series,
    suite,
    match: (p) => {
      const m = re.exec(p);
      return m ? Number(m[1]) * 100 + Number(m[2]) : undefined;
    },
  };
};

export const KERNEL_LINES: Record<string, KernelLine> = {
  "5.10-amd64": abiLine("5.10", "amd64", "bullseye"),
  "6.1-amd64": abiLine("6.1", "amd64", "bookworm"),
  "6.12-amd64": upstreamLine("6.12", "amd64", "trixie / bookworm-backports"),
  "6.12-arm64": upstreamLine("6.12", "arm64", "trixie / bookworm-backports"),
};

export interface VmKernel {
  line: KernelLine;
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

const DONE = ".complete";

/** The package cache: shared between worktrees and runs, never required. */
export function kernelCache(): string {
  const env = process.env.DPNDNCY_KERNEL_CACHE;
  const xdg = process.env.XDG_CACHE_HOME;
  const dir = env || join(xdg || join(homedir(), ".cache"), "dpndncy-kernels");
  try {
    mkdirSync(dir, { recursive: true });
    return dir;
  } catch {
    const fallback = join(VM_BUILD, "kernels");
    mkdirSync(fallback, { recursive: true });
    return fallback;
  }
}

// ---- the private apt configuration -----------------------------------------------------------
const ARCHIVE = "http://deb.debian.org/debian";
const SUITES = ["bullseye", "bookworm", "bookworm-backports", "trixie"];
const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";
const LISTS_MAX_AGE_MS = 24 * 3600_000;

function aptDir(): string {
  return join(kernelCache(), "apt");
}

/** -o options that make apt-get / apt-cache use only our sources and lists. */
function aptOpts(): string[] {
  const d = aptDir();
  const o = (k: string, v: string) => ["-o", `${k}=${v}`];
  return [
    ...o("Dir::Etc::sourcelist", join(d, "sources.list")),
    ...o("Dir::Etc::sourceparts", "-"),
    ...o("Dir::State::Lists", join(d, "lists")),
    ...o("Dir::Cache", join(d, "cache")),
    ...o("Dir::Cache::pkgcache", ""),
    ...o("Dir::Cache::srcpkgcache", ""),
    ...o("APT::Architectures::", "amd64"),
    ...o("APT::Architectures::", "arm64"),
    // downloads land in a root-owned temporary directory that the _apt user cannot write
    ...o("APT::Sandbox::User", "root"),
  ];
}

async function withLock<T>(path: string, what: string, fn: () => Promise<T>): Promise<T> {
  const lock = new DirLock(path);
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    const t = lock.tryTake();
    if (t.taken) break;
    if (Date.now() > deadline) throw new Error(`${what}: ${path} held too long by ${t.owner}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** `apt-get update` of the private lists when they are missing or a day old. */
async function aptLists(force = false): Promise<void> {
  const d = aptDir();
  await withLock(join(kernelCache(), ".apt-lock"), "apt lists", async () => {
    mkdirSync(join(d, "lists", "partial"), { recursive: true });
    mkdirSync(join(d, "cache", "archives", "partial"), { recursive: true });
    const src = SUITES.map((s) => `deb [signed-by=${KEYRING}] ${ARCHIVE} ${s} main`).join("\n");
    writeFileSync(join(d, "sources.list"), `${src}\n`);
    const stamp = join(d, "lists", ".updated");
    const fresh =
      existsSync(stamp) && Date.now() - statSync(stamp).mtimeMs < LISTS_MAX_AGE_MS && !force;
    if (fresh) return;
    const r = await run(["apt-get", ...aptOpts(), "update", "-q"], { timeoutMs: 300_000 });
    if (r.code !== 0) {
      throw new Error(
        `apt-get update (private lists in ${d}) failed (exit ${r.code}): ${r.stderr.trim()}`,
      );
    }
    writeFileSync(stamp, new Date().toISOString());
  });
}

/**
 * Packages of the line apt knows, newest first. The search holds the lists' lock: another line's
 * forced `apt-get update` rewrites them meanwhile, and a search then sees none (a fresh machine,
 * two lines at a time).
 */
async function candidates(line: KernelLine, refresh = false): Promise<string[]> {
  await aptLists(refresh);
  const r = await withLock(join(kernelCache(), ".apt-lock"), "apt lists", () =>
    run(
      [
        "apt-cache",
        ...aptOpts(),
        "search",
        "--names-only",
        `^linux-image-${line.series.replace(".", "\\.")}\\..*-cloud-${line.arch}-unsigned$`,
      ],
      { timeoutMs: 60_000 },
    ),
  );
  if (r.code !== 0) throw new Error(`apt-cache search failed (exit ${r.code}): ${r.stderr.trim()}`);
  return [...new Set(r.stdout.split("\n").map((l) => l.split(" ")[0] ?? ""))]
    .filter((p) => line.match(p) !== undefined)
    .sort((a, b) => (line.match(b) ?? 0) - (line.match(a) ?? 0));
}

/**
 * Downloads `pkg` (for `arch`) with the private apt configuration and keeps the listed
 * top-level directories of its contents in the cache under `key`. Returns the cache directory.
 */
async function fetchDeb(pkg: string, arch: Arch, key: string, keep: string[]): Promise<string> {
  const cache = kernelCache();
  const dest = join(cache, key);
  if (existsSync(join(dest, DONE))) return dest;
  await aptLists();
  const tmp = mkdtempSync(join(cache, ".fetch-"));
  try {
    let dl = await run(["apt-get", ...aptOpts(), "download", "-q", `${pkg}:${arch}`], {
      cwd: tmp,
      timeoutMs: 300_000,
    });
    if (dl.code !== 0 && /Unable to locate|has no installation candidate|404/.test(dl.stderr)) {
      await aptLists(true); // the archive moved on since the lists were fetched
      dl = await run(["apt-get", ...aptOpts(), "download", "-q", `${pkg}:${arch}`], {
        cwd: tmp,
        timeoutMs: 300_000,
      });
    }
    const deb = readdirSync(tmp).find((f) => f.endsWith(".deb"));
    if (dl.code !== 0 || deb === undefined) {
      throw new Error(
        `apt-get download ${pkg}:${arch} failed (exit ${dl.code}): ${dl.stderr.trim()}`,
      );
    }
    const version = decodeURIComponent(deb.split("_")[1] ?? "?");
    const x = join(tmp, "x");
    const ex = await run(["dpkg-deb", "-x", join(tmp, deb), x], { timeoutMs: 120_000 });
    if (ex.code !== 0) throw new Error(`dpkg-deb -x ${deb} failed: ${ex.stderr.trim()}`);
    const out = join(tmp, "out");
    mkdirSync(out);
    for (const k of keep) {
      if (!existsSync(join(x, k))) continue; // e.g. bin/ where the package has usr/bin/ only
      mkdirSync(dirname(join(out, k)), { recursive: true });
      renameSync(join(x, k), join(out, k));
    }
    writeFileSync(join(out, DONE), `${JSON.stringify({ pkg, arch, version, deb })}\n`);
    rmSync(dest, { recursive: true, force: true });
    try {
      renameSync(out, dest);
    } catch (e) {
      // another run put it there meanwhile: theirs is as good as ours
      if (!existsSync(join(dest, DONE))) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dest;
}

function cached(line: KernelLine, pkg: string): VmKernel | undefined {
  const dir = join(kernelCache(), pkg);
  if (!existsSync(join(dir, DONE))) return undefined;
  const boot = join(dir, "boot");
  const vmlinuz = existsSync(boot)
    ? readdirSync(boot).find((f) => f.startsWith("vmlinuz-"))
    : undefined;
  if (vmlinuz === undefined) return undefined;
  const release = vmlinuz.slice("vmlinuz-".length);
  const meta = JSON.parse(readFileSync(join(dir, DONE), "utf8")) as { version?: string };
  return {
    line,
    pkg,
    pkgVersion: meta.version ?? "?",
    release,
    vmlinuz: join(boot, vmlinuz),
    config: join(boot, `config-${release}`),
    fetched: false,
  };
}

async function fetchKernel(line: KernelLine, pkg: string): Promise<VmKernel> {
  await fetchDeb(pkg, line.arch, pkg, ["boot"]);
  const k = cached(line, pkg);
  if (k === undefined) throw new Error(`${pkg}: no boot/vmlinuz-* in the package`);
  return { ...k, fetched: true };
}

/**
 * The kernel of `line` to boot: DPNDNCY_VM_KERNEL_PKG_<id> (e.g. DPNDNCY_VM_KERNEL_PKG_6_1_AMD64)
 * if set, else the newest one cached, else the newest one apt can download (older ones are
 * tried when a download fails).
 */
export async function ensureKernel(line: KernelLine): Promise<VmKernel> {
  const envName = `DPNDNCY_VM_KERNEL_PKG_${line.id.replace(/[.-]/g, "_").toUpperCase()}`;
  const pinned = process.env[envName];
  const errors: string[] = [];
  if (pinned) {
    const k = cached(line, pinned);
    if (k) return k;
    try {
      return await fetchKernel(line, pinned);
    } catch (e) {
      throw cannotFetch(line, [`${envName}=${pinned}: ${(e as Error).message}`]);
    }
  }
  const have = readdirSync(kernelCache())
    .filter((p) => line.match(p) !== undefined)
    .sort((a, b) => (line.match(b) ?? 0) - (line.match(a) ?? 0));
  for (const p of have) {
    const k = cached(line, p);
    if (k) return k;
  }
  let list: string[] = [];
  try {
    list = await candidates(line);
    // lists older than the archive's last change can lack the line: fetch them again, once
    if (list.length === 0) list = await candidates(line, true);
  } catch (e) {
    errors.push((e as Error).message);
  }
  if (list.length === 0 && errors.length === 0) {
    errors.push(
      `Debian's archive (${line.suite}) lists no ${line.series} cloud kernel for ${line.arch}`,
    );
  }
  for (const pkg of list.slice(0, 3)) {
    try {
      return await fetchKernel(line, pkg);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  throw cannotFetch(line, errors);
}

/** Debian's static busybox for `arch` (the host's /bin/busybox for the host's architecture). */
export async function ensureBusybox(arch: Arch): Promise<string> {
  if (arch === hostArch()) return "/bin/busybox";
  const dir = await fetchDeb("busybox-static", arch, `busybox-static_${arch}`, ["bin", "usr/bin"]);
  // bookworm's package puts it in /bin, trixie's (merged /usr) in /usr/bin
  const bb = [join(dir, "bin", "busybox"), join(dir, "usr", "bin", "busybox")].find((p) =>
    existsSync(p),
  );
  if (bb === undefined) throw new Error(`busybox-static:${arch} has no bin/busybox (in ${dir})`);
  return bb;
}

export function hostArch(): Arch {
  return process.arch === "arm64" ? "arm64" : "amd64";
}

function cannotFetch(line: KernelLine, errors: string[]): Error {
  return new Error(
    `cannot fetch Debian's ${line.series} cloud kernel (${line.arch}, ${line.suite}) for the VM matrix into ${kernelCache()}:\n  - ${errors.join("\n  - ")}\n` +
      "Fix the network to Debian's archive (or put an unpacked package there, or set DPNDNCY_VM_KERNELS to leave this kernel out), or set DPNDNCY_SKIP_KERNEL_TESTS=1 to skip the kernel tests.",
  );
}
