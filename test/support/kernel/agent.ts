// Drives the real agent binary: `run` a workload and get the parsed, validated log back;
// `start`/`stop`/`status` for the background agent. Every helper checks afterwards that the
// agent left nothing behind (programs, links, pins, mounts).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { AGENT, onCleanup, tempDir } from "./env.js";
import { type Ev, type ExecEv, expectSealedLog, type Log, readLog, subtree } from "./log.js";
import { type RunResult, run } from "./proc.js";
import { leaksSettled, snapshot } from "./sysstate.js";

export interface AgentRun {
  res: RunResult;
  logPath: string;
  log: Log;
  /** pid of the agent process itself. */
  agentPid: number;
  /** pid of CMD: the process the agent started (exec event whose parent is the agent). */
  rootPid: number | undefined;
  /** Events of CMD and every descendant, by the pid/ppid chain in the log. */
  workload: Ev[];
}

export interface RunOpts {
  cmd: string[];
  /** extra options before `--` (e.g. --config FILE, --mode observe) */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  logPath?: string;
  timeoutMs?: number;
  /** default true: fail the test when a log line is not valid JSON / schema / seq. */
  validate?: boolean;
}

/** `dpndncy-agent run --log FILE [args] -- CMD`, then the parsed log. */
export async function agentRun(opts: RunOpts): Promise<AgentRun> {
  const logPath = opts.logPath ?? join(tempDir("log"), "events.ndjson");
  const before = await snapshot();
  const res = await run([AGENT, "run", "--log", logPath, ...(opts.args ?? []), "--", ...opts.cmd], {
    env: opts.env,
    timeoutMs: opts.timeoutMs ?? 90_000,
  });
  if (!existsSync(logPath)) {
    throw new Error(`agent run wrote no log (exit ${res.code}):\n${res.stderr}`);
  }
  const log = readLog(logPath);
  if (opts.validate ?? true) {
    expect(log.errors, `log ${logPath} breaks the contract`).toEqual([]);
    // every finished run: start first, one stop last, counts and hash right, nothing lost
    const stop = expectSealedLog(log, true);
    expect(stop.lost, "events lost").toEqual(
      Object.fromEntries(Object.keys(stop.lost ?? {}).map((k) => [k, 0])),
    );
  }
  expect(await leaksSettled(before), "left behind by `dpndncy-agent run`").toEqual([]);
  // the agent's own pid as its start record says (res.pid would be a wrapper's, if any)
  const startRec = log.events.find((e) => e.kind === "agent" && e.event === "start");
  const agentPid = startRec?.pid ?? res.pid;
  const root = log.events.find(
    (e): e is ExecEv => e.kind === "exec" && e.ppid === agentPid && e.pid !== agentPid,
  )?.pid;
  const pids = root === undefined ? new Set<number>() : subtree(log.events, root);
  const workload = log.events.filter((e) => e.kind !== "agent" && pids.has(e.pid));
  return { res, logPath, log, agentPid, rootPid: root, workload };
}

/** Fails with the agent's stderr when the run did not succeed. */
export function expectRunOk(r: AgentRun): void {
  expect(r.res.code, `agent run failed:\n${r.res.stderr}\n(stdout)\n${r.res.stdout}`).toBe(0);
  expect(r.rootPid, "no exec event of CMD with the agent as parent").toBeDefined();
}

export function agentCli(args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return run([AGENT, ...args], { env, timeoutMs: 60_000 });
}

export interface Started {
  res: RunResult;
  stateDir: string;
  logPath: string;
  /** the background agent's pid, from the state dir's pid file or start's output */
  pid: number | undefined;
}

/** Background agent with its own state dir; stopped (or killed) at cleanup whatever happens. */
export async function agentStart(
  extra: string[] = [],
  log?: string,
  env?: NodeJS.ProcessEnv,
): Promise<Started> {
  const dir = tempDir("state");
  const stateDir = join(dir, "state");
  const logPath = log ?? join(dir, "events.ndjson");
  const res = await agentCli(["start", "--log", logPath, "--state-dir", stateDir, ...extra], env);
  const pid = parsePid(res.stdout);
  onCleanup(async () => {
    if (pid !== undefined && alive(pid)) {
      await agentCli(["stop", "--state-dir", stateDir]);
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  });
  return { res, stateDir, logPath, pid };
}

/** The pid `start` printed: a JSON object with "pid", or a "pid N"/"pid: N" text. */
export function parsePid(stdout: string): number | undefined {
  const t = stdout.trim();
  try {
    const j = JSON.parse(t) as { pid?: unknown };
    if (typeof j.pid === "number") return j.pid;
  } catch {}
  const m = /\bpid[\s:=]+(\d+)/i.exec(t) ?? /"pid"\s*:\s*(\d+)/.exec(t);
  return m?.[1] ? Number(m[1]) : undefined;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie still answers kill(0); it is gone as far as we are concerned
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

export function parseJson<T = Record<string, unknown>>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${what} is not JSON (${(e as Error).message}):\n${text}`);
  }
}
