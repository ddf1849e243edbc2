// dpndncy daemon --config FILE [--check]: one agent per host, one trace per job (docs/daemon.md).
import { join } from "node:path";
import { agentArgs, findAgent, renderDaemonAgentConfig } from "../daemon/agent-config.js";
import { type DaemonConfig, loadDaemonConfig } from "../daemon/config.js";
import { compilePolicies, PolicyTree } from "../daemon/policies.js";
import { setupSigning, tokenFileProblem } from "../daemon/signer.js";
import { DAEMON_EXIT, Daemon, StartError } from "../daemon/supervisor.js";
import { readSecret } from "../daemon/webhook.js";
import { EXIT, type Io, parse, UsageError } from "./io.js";

export const DAEMON_USAGE = `usage: dpndncy daemon --config daemon.yml [--check] [--agent PATH]
  Run dpndncy-agent host-wide in daemon mode: one log per CI job (signed when daemon.yml has
  signing:), per-job policies from policyDir (reloaded on SIGHUP and on change), Prometheus
  metrics, deny webhooks. Runs in the foreground until SIGTERM/SIGINT (schema/daemon.v1.json,
  docs/daemon.md).
  --config FILE   daemon.yml
  --check         validate daemon.yml, compile the policies, print what would run; start nothing
  --agent PATH    the agent binary (overrides daemon.yml's agent:)
exit: 0 stopped cleanly / check passed, 1 the agent died or did not stop cleanly, 2 usage error,
      3 daemon.yml, a policy, the signing key or the webhook secret is unusable,
      5 the agent could not be started`;

const OPTIONS = {
  config: { type: "string" },
  check: { type: "boolean" },
  agent: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Which process signals a running daemon acts on; src/cli.ts's process, or a test's emitter. */
export interface SignalSource {
  on(signal: NodeJS.Signals, f: () => void): unknown;
  off(signal: NodeJS.Signals, f: () => void): unknown;
}

async function check(c: DaemonConfig, agent: string, io: Io): Promise<number> {
  if (c.webhook) readSecret(c.webhook.secretFile);
  const signing = c.signing ? setupSigning(c.signing).label : "NONE: job logs would NOT be signed";
  const tokenProblem = c.signing ? tokenFileProblem(c.signing) : undefined;
  const out = [`config ${c.file}: ok`, `agent ${agent}`];
  let compiledPolicyDir: string | undefined;
  if (c.policyDir !== undefined) {
    const compiled = await compilePolicies(c.policyDir);
    out.push(`policies ${c.policyDir}: ${compiled.policies.length} compiled`);
    for (const p of compiled.policies)
      out.push(`  ${p.source} -> ${p.conf} (${p.allow} allow entries)`);
    for (const w of compiled.warnings) out.push(`  WARNING: ${w}`);
    compiledPolicyDir = new PolicyTree(c.stateDir).link;
  }
  const config = join(c.stateDir, "agent.conf");
  out.push(`signing: ${signing}`);
  if (tokenProblem) out.push(`  WARNING: ${tokenProblem}`);
  out.push(`webhook: ${c.webhook ? c.webhook.url : "none"}`);
  out.push(`metrics: ${c.metrics ? `${c.metrics.host}:${c.metrics.port}` : "none"}`);
  out.push(
    `would run: ${[agent, ...agentArgs(c, { config, ...(compiledPolicyDir ? { compiledPolicyDir } : {}) })].join(" ")}`,
  );
  out.push(
    `with ${config}:`,
    ...renderDaemonAgentConfig(c)
      .trimEnd()
      .split("\n")
      .map((l) => `  ${l}`),
  );
  io.out(`${out.join("\n")}\n`);
  return EXIT.OK;
}

export function daemonCommand(signals: SignalSource = process) {
  return async function daemon(argv: string[], io: Io): Promise<number> {
    let v: ReturnType<typeof parse<typeof OPTIONS>>["values"];
    try {
      const p = parse(argv, OPTIONS);
      v = p.values;
      if (v.help) {
        io.out(`${DAEMON_USAGE}\n`);
        return EXIT.OK;
      }
      if (p.positionals.length) throw new UsageError(`unexpected argument ${p.positionals[0]}`);
      if (v.config === undefined) throw new UsageError("--config FILE is required");
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      io.err(`dpndncy daemon: ${e.message}\n${DAEMON_USAGE}\n`);
      return EXIT.USAGE;
    }
    let c: DaemonConfig;
    let agent: string;
    try {
      c = loadDaemonConfig(v.config);
    } catch (e) {
      io.err(`dpndncy daemon: ${(e as Error).message}\n`);
      return EXIT.INPUT;
    }
    try {
      agent = findAgent(v.agent ?? c.agent, process.argv[1], io.env.PATH);
    } catch (e) {
      io.err(`dpndncy daemon: ${(e as Error).message}\n`);
      return DAEMON_EXIT.AGENT_START;
    }
    if (v.check) {
      try {
        return await check(c, agent, io);
      } catch (e) {
        // a policy (FILE:LINE:COLUMN), the key, the webhook secret, the signing endpoints
        io.err(`dpndncy daemon: ${(e as Error).message}\n`);
        return EXIT.INPUT;
      }
    }
    let d: Daemon;
    try {
      d = await Daemon.start({ config: c, agentCommand: [agent], io });
    } catch (e) {
      if (!(e instanceof StartError)) throw e;
      io.err(`dpndncy daemon: ${e.message}\n`);
      return EXIT.INPUT;
    }
    const onStop = (sig: NodeJS.Signals) => () => d.stop(sig);
    const term = onStop("SIGTERM");
    const int = onStop("SIGINT");
    const hup = () => void d.reload("SIGHUP");
    signals.on("SIGTERM", term);
    signals.on("SIGINT", int);
    signals.on("SIGHUP", hup);
    try {
      return await d.exited;
    } finally {
      signals.off("SIGTERM", term);
      signals.off("SIGINT", int);
      signals.off("SIGHUP", hup);
    }
  };
}

export const daemon = daemonCommand();
export { DAEMON_EXIT };
