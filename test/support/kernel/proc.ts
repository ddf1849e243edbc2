// Process helpers for the kernel suite: run a command to completion, or keep one in the
// background (servers) and wait for the line that says it is ready.
import { type ChildProcess, spawn } from "node:child_process";

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
  pid: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  input?: string | Buffer;
}

/** Runs argv[0] with argv[1..] (no shell) and collects its output. Rejects only on timeout. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("run: empty argv");
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `timed out after ${timeoutMs} ms: ${argv.join(" ")}\nstderr: ${Buffer.concat(err).toString()}`,
        ),
      );
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code,
        signal,
        stdout: stdoutBytes.toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        stdoutBytes,
        pid: child.pid ?? -1,
      });
    });
    child.stdin.on("error", () => {});
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Like run(), but throws with the command's stderr unless it exits 0. */
export async function runOk(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) {
    throw new Error(`${argv.join(" ")} exited ${r.code ?? r.signal}\n${r.stderr}${r.stdout}`);
  }
  return r;
}

export interface Background {
  child: ChildProcess;
  pid: number;
  /** Everything the process wrote to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout line matching re. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after a grace period; resolves when the process is gone. */
  stop(): Promise<void>;
}

export function spawnBackground(argv: readonly string[], opts: RunOptions = {}): Background {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("spawnBackground: empty argv");
  const child = spawn(file, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let exited = false;
  const exitedP = new Promise<void>((res) => {
    child.on("close", () => {
      exited = true;
      res();
    });
    child.on("error", () => {
      exited = true;
      res();
    });
  });
  child.stdout?.on("data", (b: Buffer) => {
    out += b.toString("utf8");
  });
  child.stderr?.on("data", (b: Buffer) => {
    err += b.toString("utf8");
  });
  return {
    child,
    pid: child.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    waitForLine(re, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const deadline = Date.now() + timeoutMs;
        const tick = () => {
          const line = out.split("\n").find((l) => re.test(l));
          if (line !== undefined) return resolve(line);
          if (exited) {
            return reject(new Error(`${argv.join(" ")} exited before printing ${re}\n${err}`));
          }
          if (Date.now() > deadline) {
            return reject(new Error(`${argv.join(" ")} did not print ${re} in time\n${err}`));
          }
          setTimeout(tick, 20);
        };
        tick();
      });
    },
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exitedP;
      clearTimeout(t);
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls fn until it returns a truthy value or the deadline passes (then returns the last value). */
export async function poll<T>(
  fn: () => Promise<T> | T,
  timeoutMs: number,
  stepMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v || Date.now() > deadline) return v;
    await sleep(stepMs);
  }
}

/**
 * argv for `sh -c script` in a private mount namespace: whatever the script mounts or unmounts
 * is gone with it, so a test can start from no bpffs/tracefs without touching the host's.
 * `args` become the script's "$@" ($0 is "sh").
 */
export function inPrivateMounts(script: string, ...args: string[]): string[] {
  return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", ...args];
}

/** The rest of the first `KEY …` line of a script's output (scripts report state that way). */
export function keyedLine(stdout: string, key: string): string {
  return (stdout.split("\n").find((l) => l.startsWith(`${key} `)) ?? "")
    .slice(key.length + 1)
    .trim();
}
