/**
 * Drives the static agent through its CLI contract (agent-c/, `dpndncy-agent --help`):
 * `start` returns once every hook is attached, `stop` drains and prints statistics.
 * Used by the action's pre/post and by the `dpndncy start|stop` CLI.
 */
import { spawn } from "node:child_process";

export type Mode = "observe" | "learn" | "enforce";

/**
 * What the kernel side does in each job mode: learn records exactly like observe (the policy is
 * derived from the log afterwards), so the agent runs in observe mode for it.
 */
export function agentMode(mode: Mode): "observe" | "enforce" {
  return mode === "enforce" ? "enforce" : "observe";
}

export interface StartOptions {
  agent: string;
  log: string;
  stateDir: string;
  mode: Mode;
  config?: string;
  /** Prefix such as ["sudo", "-n"] when not root. */
  elevate?: string[];
  env?: NodeJS.ProcessEnv;
}

export interface Started {
  pid: number;
  attach: Record<string, string>;
  raw: unknown;
}

export interface StopStats {
  complete: boolean;
  events: Record<string, number>;
  lost: Record<string, number>;
  log_sha256?: string;
  duration_s?: number;
  raw: unknown;
}

export class AgentError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = "AgentError";
  }
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[], env?: NodeJS.ProcessEnv): Promise<Result> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    if (!cmd) return reject(new Error("empty command"));
    // The agent daemonizes; its detached child must not hold our pipes open.
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: env ?? process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => {
      stdout += b.toString("utf8");
    });
    child.stderr.on("data", (b: Buffer) => {
      stderr += b.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** The agent prints one JSON document on stdout; tolerate log lines before it. */
export function parseJsonOutput(stdout: string): unknown {
  const start = stdout.indexOf("{");
  if (start < 0) throw new Error(`expected JSON from the agent, got: ${stdout.slice(0, 200)}`);
  return JSON.parse(stdout.slice(start));
}

function firstLine(s: string): string {
  return s.trim().split("\n")[0] ?? "";
}

export async function startAgent(o: StartOptions): Promise<Started> {
  const argv = [
    ...(o.elevate ?? []),
    o.agent,
    "start",
    "--log",
    o.log,
    "--state-dir",
    o.stateDir,
    "--mode",
    agentMode(o.mode),
    ...(o.config ? ["--config", o.config] : []),
  ];
  const r = await run(argv, o.env);
  if (r.code !== 0) {
    throw new AgentError(
      `dpndncy-agent start failed (exit ${r.code}): ${firstLine(r.stderr) || firstLine(r.stdout)}`,
      r.code,
      r.stderr,
    );
  }
  const raw = parseJsonOutput(r.stdout) as { pid?: unknown; attach?: unknown };
  if (typeof raw.pid !== "number") throw new AgentError("agent start printed no pid", 0, r.stderr);
  return { pid: raw.pid, attach: (raw.attach ?? {}) as Record<string, string>, raw };
}

export async function stopAgent(agent: string, stateDir: string, elevate: string[] = []) {
  const r = await run([...elevate, agent, "stop", "--state-dir", stateDir]);
  let raw: Record<string, unknown> = {};
  try {
    raw = parseJsonOutput(r.stdout) as Record<string, unknown>;
  } catch {
    throw new AgentError(
      `dpndncy-agent stop failed (exit ${r.code}): ${firstLine(r.stderr) || "no statistics printed"}`,
      r.code,
      r.stderr,
    );
  }
  const stats: StopStats = {
    complete: raw.complete === true && r.code === 0,
    events: (raw.events ?? {}) as Record<string, number>,
    lost: (raw.lost ?? {}) as Record<string, number>,
    raw,
  };
  if (typeof raw.log_sha256 === "string") stats.log_sha256 = raw.log_sha256;
  if (typeof raw.duration_s === "number") stats.duration_s = raw.duration_s;
  return { stats, stderr: r.stderr, exitCode: r.code };
}

export async function agentStatus(agent: string, stateDir: string, elevate: string[] = []) {
  const r = await run([...elevate, agent, "status", "--state-dir", stateDir]);
  return parseJsonOutput(r.stdout) as { running?: boolean; pid?: number };
}

/**
 * Enforce mode: move `pid` (and so every process it starts from now on) into the cgroup the
 * agent enforces on, printed by `dpndncy-agent start` as "cgroup". Fails loudly: a job left
 * outside the cgroup would run unconfined while the agent looked armed.
 */
export async function joinEnforcedCgroup(
  startOutput: unknown,
  pid: number,
  elevate: string[] = [],
): Promise<string> {
  const cg = (startOutput as { cgroup?: unknown }).cgroup;
  if (typeof cg !== "string" || !cg.startsWith("/")) {
    throw new AgentError("enforce mode: the agent printed no cgroup to enforce on", 0, "");
  }
  const r = await run([
    ...elevate,
    "/bin/sh",
    "-c",
    'echo "$1" > "$2/cgroup.procs"',
    "sh",
    String(pid),
    cg,
  ]);
  if (r.code !== 0) {
    throw new AgentError(
      `enforce mode: cannot move process ${pid} into ${cg}: ${firstLine(r.stderr)}`,
      r.code,
      r.stderr,
    );
  }
  return cg;
}
