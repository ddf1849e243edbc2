// Prerequisites of the real-kernel suite and the one way every kernel test file declares itself.
//
// Never skip silently: when a prerequisite is missing every test of the file FAILS with the
// reason, unless DPNDNCY_SKIP_KERNEL_TESTS=1 asks to skip — then the file is skipped and says
// what it skipped and why.
import { accessSync, constants, existsSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const AGENT = process.env.DPNDNCY_AGENT ?? join(REPO, "build/dpndncy-agent");
export const SCHEMA = join(REPO, "schema/event.v1.json");
export const FIXTURES = join(REPO, "test/support/kernel/fixtures");
/** The distribution's python, not a pyenv shim (a shim is a shell script that execs more). */
export const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

const TOOLS = ["ip", "dig", "gcc", "bpftool", "file", "ldd", "setpriv", "unshare", "getent"];

/** The executable PATH resolves `tool` to, if any. */
export function which(tool: string): string | undefined {
  for (const d of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    const p = join(d, tool);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

/** Reasons the suite cannot run here; empty when it can. */
export function missingPrerequisites(): string[] {
  const why: string[] = [];
  if (process.platform !== "linux") why.push(`not Linux (${process.platform})`);
  if (process.getuid?.() !== 0) why.push(`not root (uid ${process.getuid?.()})`);
  if (!existsSync("/sys/kernel/btf/vmlinux")) why.push("no kernel BTF at /sys/kernel/btf/vmlinux");
  try {
    accessSync(AGENT, constants.X_OK);
  } catch {
    why.push(`agent binary missing or not executable: ${AGENT} (run \`make agent\`)`);
  }
  if (!existsSync(PYTHON)) why.push(`no python3 at ${PYTHON}`);
  for (const t of TOOLS) if (!which(t)) why.push(`tool not found on PATH: ${t}`);
  return why;
}

type Cleanup = () => Promise<void> | void;
const fileCleanups: Cleanup[] = [];
const testCleanups: Cleanup[] = [];
let inTest = false;

/** Called by suite.ts around each test. */
export function setInTest(v: boolean): void {
  inTest = v;
}

/** Registers cleanup for the current test (or, outside a test, for the file). Runs LIFO, even on failure. */
export function onCleanup(fn: Cleanup): void {
  (inTest ? testCleanups : fileCleanups).push(fn);
}

async function drain(list: Cleanup[]): Promise<void> {
  const errors: unknown[] = [];
  while (list.length > 0) {
    const fn = list.pop();
    try {
      await fn?.();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length > 0) {
    throw new Error(`cleanup failed:\n${errors.map((e) => String(e)).join("\n")}`);
  }
}

const madeDirs = new Set<string>();

/** A fresh temp directory (realpath, so paths in events compare equal), removed at cleanup. */
export function tempDir(tag: string): string {
  const d = realpathSync(mkdtempSync(join(tmpdir(), `dpndncy-kt-${tag}-`)));
  madeDirs.add(d);
  onCleanup(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Temp dirs made by tempDir() in this process that still exist. */
export function leftoverTempDirs(): string[] {
  return [...madeDirs].filter((d) => existsSync(d));
}

/** Runs the current test's cleanups (afterEach) or the file's (afterAll). */
export async function runCleanups(scope: "test" | "file"): Promise<void> {
  await drain(scope === "test" ? testCleanups : fileCleanups);
}
