/**
 * `dpndncy daemon`'s supervisor (docs/daemon.md): compiles the policies, starts the C agent,
 * reads its control stream line by line and routes each line (metrics, webhooks, signing,
 * stdout), reloads policies on SIGHUP or a change in policyDir, and stops the agent on
 * SIGTERM/SIGINT. Nothing slow runs on the reading path: webhooks and signing have their own
 * queues. If the agent dies on its own the supervisor says so and exits non-zero, so systemd
 * or Kubernetes restarts the pair.
 *
 * The agent command is a parameter (tests run a stand-in script); signals are delivered by
 * the caller (src/cli/daemon.ts wires the process's own).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { type FSWatcher, mkdirSync, watch, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { agentArgs, identityVars, renderDaemonAgentConfig } from "./agent-config.js";
import type { DaemonConfig } from "./config.js";
import { type ControlLine, type JobStart, parseControlLine } from "./control.js";
import { DaemonMetrics, type MetricsServer, serveMetrics } from "./metrics.js";
import { compilePolicies, PolicyTree } from "./policies.js";
import { JobSigner, type SignedJob, setupSigning, tokenFileProblem } from "./signer.js";
import { readSecret, WebhookSender } from "./webhook.js";

export interface DaemonIo {
  out(text: string): void;
  err(text: string): void;
}

export type DaemonEvent =
  | { kind: "line"; line: ControlLine }
  | { kind: "invalid"; text: string; error: string }
  | { kind: "reload"; ok: boolean; error?: string }
  | { kind: "signed"; result: SignedJob }
  | { kind: "agent-exit"; code: number | null; signal: NodeJS.Signals | null; expected: boolean };

export interface DaemonOptions {
  config: DaemonConfig;
  /** The agent to run: [binary, ...leading args]; the daemon arguments follow. */
  agentCommand: string[];
  io: DaemonIo;
  /** Observes what the daemon did (tests). */
  onEvent?: (e: DaemonEvent) => void;
  /** How long shutdown waits for the signer and the webhooks (default 20 s). */
  drainMs?: number;
  /** How long the agent has to stop after the signal before SIGKILL (default 30 s). */
  stopTimeoutMs?: number;
  /** Quiet time after a change in policyDir before reloading (default 500 ms). */
  watchDebounceMs?: number;
  webhookBackoffMs?: number;
  webhookMaxBackoffMs?: number;
  metrics?: DaemonMetrics;
}

/** Exit statuses of `dpndncy daemon` (src/cli/README.md). */
export const DAEMON_EXIT = {
  OK: 0,
  /** The agent died, stopped on its own, or failed to stop cleanly. */
  AGENT_DIED: 1,
  /** daemon.yml, a policy, the key or the webhook secret is unusable. */
  INPUT: 3,
  /** The agent could not be started. */
  AGENT_START: 5,
} as const;

export class StartError extends Error {
  override name = "StartError";
}

export interface Prepared {
  agentConfig: string;
  agentConfigPath: string;
  compiledPolicyDir?: string;
  args: string[];
  warnings: string[];
}

/** Compiles the policies into stateDir and writes the agent config: everything before spawning. */
export async function prepare(
  c: DaemonConfig,
  tree: PolicyTree,
  log: (s: string) => void,
): Promise<Prepared> {
  mkdirSync(c.jobsDir, { recursive: true, mode: 0o750 });
  mkdirSync(c.stateDir, { recursive: true, mode: 0o755 });
  const warnings: string[] = [];
  let compiledPolicyDir: string | undefined;
  if (c.policyDir !== undefined) {
    try {
      const compiled = await compilePolicies(c.policyDir);
      warnings.push(...compiled.warnings);
      tree.install(compiled);
      log(`dpndncy daemon: ${compiled.policies.length} policies compiled from ${c.policyDir}\n`);
    } catch (e) {
      if (tree.current() === undefined) throw new StartError((e as Error).message);
      log(
        `dpndncy daemon: POLICY ERROR: ${(e as Error).message}\ndpndncy daemon: starting with the policies compiled before (${tree.current()})\n`,
      );
    }
    compiledPolicyDir = tree.link;
  } else if (c.mode === "enforce") {
    warnings.push(
      "no policyDir: in enforce mode every job may reach only loopback and the DNS resolvers",
    );
  }
  const { dropped } = identityVars(c.jobMarkers);
  if (dropped.length) {
    warnings.push(
      `jobMarkers: the agent reads at most 4 identity variables of each kind; not read: ${dropped.join(", ")}`,
    );
  }
  const agentConfig = renderDaemonAgentConfig(c);
  const agentConfigPath = join(c.stateDir, "agent.conf");
  writeFileSync(agentConfigPath, agentConfig, { mode: 0o644 });
  const args = agentArgs(c, {
    config: agentConfigPath,
    ...(compiledPolicyDir ? { compiledPolicyDir } : {}),
  });
  return {
    agentConfig,
    agentConfigPath,
    ...(compiledPolicyDir ? { compiledPolicyDir } : {}),
    args,
    warnings,
  };
}

export class Daemon {
  /** Resolves with the exit status once the agent is gone and the queues are drained. */
  readonly exited: Promise<number>;
  readonly metrics: DaemonMetrics;
  metricsUrl: string | undefined;
  private resolveExit!: (code: number) => void;
  private child: ChildProcess | undefined;
  private stopping = false;
  private sawStop = false;
  private killTimer: NodeJS.Timeout | undefined;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private reloading: Promise<boolean> = Promise.resolve(true);
  private server: MetricsServer | undefined;
  private webhook: WebhookSender | undefined;
  private signer: JobSigner | undefined;
  private readonly jobs = new Map<string, JobStart>();
  /** The agent's own host log (daemon-start `log`): signed once the agent has closed it. */
  private daemonLog: string | undefined;
  private readonly tree: PolicyTree;
  private readonly c: DaemonConfig;

  private constructor(private readonly o: DaemonOptions) {
    this.c = o.config;
    this.metrics = o.metrics ?? new DaemonMetrics();
    this.tree = new PolicyTree(this.c.stateDir);
    this.exited = new Promise((r) => {
      this.resolveExit = r;
    });
  }

  private say(line: string): void {
    this.o.io.err(`dpndncy daemon: ${line}\n`);
  }

  private emit(e: DaemonEvent): void {
    this.o.onEvent?.(e);
  }

  /** Sets everything up and starts the agent; throws StartError when it cannot. */
  static async start(o: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(o);
    await d.init();
    return d;
  }

  private async init(): Promise<void> {
    const c = this.c;
    const log = (s: string) => this.o.io.err(s);
    try {
      if (c.webhook) {
        this.webhook = new WebhookSender({
          url: c.webhook.url,
          secret: readSecret(c.webhook.secretFile),
          timeoutMs: c.webhook.timeoutMs,
          maxAttempts: c.webhook.maxAttempts,
          queueLimit: c.webhook.queueLimit,
          metrics: this.metrics,
          log: (s) => this.o.io.err(`${s}\n`),
          ...(this.o.webhookBackoffMs !== undefined ? { backoffMs: this.o.webhookBackoffMs } : {}),
          ...(this.o.webhookMaxBackoffMs !== undefined
            ? { maxBackoffMs: this.o.webhookMaxBackoffMs }
            : {}),
        });
      }
      if (c.signing) {
        const setup = setupSigning(c.signing);
        this.signer = new JobSigner(setup, {
          log: (s) => this.o.io.err(`${s}\n`),
          metrics: this.metrics,
          onSigned: (result) => this.onSigned(result),
        });
        this.say(`signing each job log: ${setup.label}`);
        const problem = tokenFileProblem(c.signing);
        if (problem) this.say(`WARNING: ${problem}`);
      } else {
        this.say(
          "WARNING: NO SIGNING CONFIGURED: job logs are NOT signed (add signing: to daemon.yml)",
        );
      }
    } catch (e) {
      throw new StartError((e as Error).message);
    }
    const prepared = await prepare(c, this.tree, log);
    for (const w of prepared.warnings) this.say(`WARNING: ${w}`);
    if (c.metrics) {
      try {
        this.server = await serveMetrics(this.metrics, c.metrics.host, c.metrics.port);
      } catch (e) {
        throw new StartError(
          `metrics.listen ${c.metrics.host}:${c.metrics.port}: ${(e as Error).message}`,
        );
      }
      this.metricsUrl = this.server.url;
      this.o.io.out(`${JSON.stringify({ metrics: this.server.url })}\n`);
      this.say(`metrics on ${this.server.url}`);
    }
    this.spawnAgent(prepared.args);
    if (c.policyDir !== undefined) this.watchPolicies(c.policyDir);
  }

  private spawnAgent(args: string[]): void {
    const [cmd, ...lead] = this.o.agentCommand;
    if (!cmd) throw new StartError("no agent command");
    this.say(`starting ${[cmd, ...lead, ...args].join(" ")}`);
    const child = spawn(cmd, [...lead, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    this.child = child;
    let spawnError: Error | undefined;
    child.on("error", (e) => {
      spawnError = e;
    });
    const rl = createInterface({
      input: child.stdout as NonNullable<typeof child.stdout>,
      crlfDelay: Infinity,
    });
    rl.on("line", (text) => this.onLine(text));
    let gone = false;
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      if (gone) return;
      gone = true;
      void this.onAgentGone(code, signal, spawnError);
    };
    // "close" comes once stdout is read to its end (every line routed); a process the agent
    // left behind holding the pipe must not keep us waiting for it, though
    child.on("close", done);
    child.on("exit", (code, signal) => {
      setTimeout(() => done(code, signal), 2000).unref();
    });
  }

  private onLine(text: string): void {
    if (text.trim() === "") return;
    const parsed = parseControlLine(text);
    if (!parsed.ok) {
      this.metrics.invalidLines.inc();
      const shown = text.length > 500 ? `${text.slice(0, 500)}…` : text;
      this.say(`INVALID CONTROL LINE from the agent (ignored): ${parsed.error}: ${shown}`);
      this.emit({ kind: "invalid", text, error: parsed.error });
      return;
    }
    const line = parsed.line;
    try {
      this.route(line, text);
    } catch (e) {
      // a bug in a handler must not stop the stream
      this.say(`INTERNAL ERROR handling a ${line.type} line: ${(e as Error).stack ?? String(e)}`);
    }
    this.emit({ kind: "line", line });
  }

  private print(text: string): void {
    if (this.c.stdout) this.o.io.out(`${text}\n`);
  }

  private route(line: ControlLine, text: string): void {
    switch (line.type) {
      case "daemon-start":
        this.daemonLog = line.log ?? undefined;
        this.say(
          `agent pid ${line.pid} watching (mode ${line.mode}, jobs ${line.jobs_dir}, kernel ${line.kernel})`,
        );
        break;
      case "job-start":
        this.jobs.set(line.job, line);
        this.metrics.jobsActive.inc();
        this.print(text);
        break;
      case "job-end": {
        const start = this.jobs.get(line.job);
        this.jobs.delete(line.job);
        this.metrics.onJobEnd(line);
        this.metrics.jobsActive.dec();
        this.print(text);
        if (!line.complete)
          this.say(`job ${line.job}: trace INCOMPLETE (events lost: ${JSON.stringify(line.lost)})`);
        const log = isAbsolute(line.log) ? line.log : resolve(this.c.jobsDir, line.log);
        this.signer?.enqueue(line.job, log, start);
        break;
      }
      case "deny":
        this.print(text);
        this.webhook?.enqueue(line);
        break;
      case "stats":
        this.metrics.onStats(line);
        break;
      case "policy-reload":
        this.metrics.policyReloads.inc({ result: line.ok ? "ok" : "failed" });
        if (line.ok) this.say(`agent loaded the policies (${JSON.stringify(line.policies)})`);
        else
          this.say(`AGENT REFUSED THE POLICIES (the previous ones stay in force): ${line.error}`);
        break;
      case "error":
        this.metrics.agentErrors.inc();
        this.say(`AGENT ERROR: ${line.message}`);
        break;
      case "daemon-stop":
        this.sawStop = true;
        this.say(`agent stopped: ${line.jobs_closed} job log(s) closed`);
        break;
    }
  }

  private onSigned(r: SignedJob): void {
    if (r.bundle)
      this.print(
        JSON.stringify({
          type: "signed",
          ts: new Date().toISOString(),
          job: r.job,
          log: r.log,
          bundle: r.bundle,
        }),
      );
    this.emit({ kind: "signed", result: r });
  }

  private watchPolicies(dir: string): void {
    try {
      this.watcher = watch(dir, { recursive: true }, () => {
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => {
          void this.reload("change in the policy directory");
        }, this.o.watchDebounceMs ?? 500);
      });
      this.watcher.on("error", (e) =>
        this.say(`WARNING: watching ${dir} stopped: ${e.message}; reload with SIGHUP`),
      );
    } catch (e) {
      this.say(`WARNING: cannot watch ${dir} (${(e as Error).message}); reload with SIGHUP`);
    }
  }

  /**
   * Recompiles the policy directory; on success installs it and tells the agent (SIGHUP). A
   * directory that does not load changes nothing: the policies in force stay.
   */
  reload(why = "SIGHUP"): Promise<boolean> {
    const dir = this.c.policyDir;
    this.reloading = this.reloading.then(async () => {
      if (dir === undefined) {
        this.say(`${why}: no policyDir configured; nothing to reload`);
        return false;
      }
      if (this.stopping) return false;
      try {
        const compiled = await compilePolicies(dir);
        for (const w of compiled.warnings) this.say(`WARNING: ${w}`);
        this.tree.install(compiled);
        this.say(`${why}: ${compiled.policies.length} policies compiled; telling the agent`);
        this.child?.kill("SIGHUP");
        this.emit({ kind: "reload", ok: true });
        return true;
      } catch (e) {
        const error = (e as Error).message;
        this.metrics.policyReloads.inc({ result: "invalid" });
        this.say(`POLICY RELOAD REFUSED (${why}): ${error}; the policies in force stay`);
        this.emit({ kind: "reload", ok: false, error });
        return false;
      }
    });
    return this.reloading;
  }

  /** SIGTERM/SIGINT: the agent closes every job log, reports daemon-stop and exits. */
  stop(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.stopping) return;
    this.stopping = true;
    this.say(`${signal}: stopping the agent`);
    clearTimeout(this.debounce);
    this.watcher?.close();
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    this.killTimer = setTimeout(() => {
      this.say(`AGENT DID NOT STOP within ${this.o.stopTimeoutMs ?? 30_000} ms: SIGKILL`);
      this.child?.kill("SIGKILL");
    }, this.o.stopTimeoutMs ?? 30_000);
  }

  private async onAgentGone(
    code: number | null,
    signal: NodeJS.Signals | null,
    spawnError: Error | undefined,
  ): Promise<void> {
    clearTimeout(this.killTimer);
    clearTimeout(this.debounce);
    this.watcher?.close();
    const expected = this.stopping;
    this.emit({ kind: "agent-exit", code, signal, expected });
    let status: number;
    if (spawnError) {
      this.say(`CANNOT START THE AGENT: ${spawnError.message}`);
      status = DAEMON_EXIT.AGENT_START;
    } else if (!expected) {
      this.say(
        `THE AGENT DIED UNEXPECTEDLY (${signal ? `signal ${signal}` : `exit status ${code}`}${this.sawStop ? ", after daemon-stop" : ""}); jobs are NOT being watched; exiting non-zero so the service manager restarts us`,
      );
      status = DAEMON_EXIT.AGENT_DIED;
    } else if (code !== 0 || !this.sawStop) {
      this.say(
        `the agent did not stop cleanly (${signal ? `signal ${signal}` : `exit status ${code}`}${this.sawStop ? "" : ", no daemon-stop"})`,
      );
      status = DAEMON_EXIT.AGENT_DIED;
    } else {
      status = DAEMON_EXIT.OK;
    }
    this.stopping = true;
    if (status === DAEMON_EXIT.OK && this.daemonLog !== undefined) {
      // complete only now: the agent writes its stop record after daemon-stop
      this.signer?.enqueue("daemon", resolve(this.c.jobsDir, this.daemonLog));
    }
    const drainMs = this.o.drainMs ?? 20_000;
    const [unsigned, undelivered] = await Promise.all([
      this.signer?.drain(drainMs) ?? 0,
      this.webhook?.flush(drainMs) ?? 0,
    ]);
    if (unsigned)
      this.say(`${unsigned} job log(s) left UNSIGNED at shutdown (sign them with dpndncy attest)`);
    if (undelivered) this.say(`${undelivered} deny webhook(s) NOT DELIVERED at shutdown`);
    await this.server?.close();
    this.resolveExit(status);
  }
}
