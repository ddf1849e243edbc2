// dpndncy start: what the action's pre stage does, on any CI. Detect the platform, locate or
// download the agent and verify its SHA-256 before running it, start it armed, and leave a
// session file for `dpndncy stop` (which may run in another shell).
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { policyConfig, renderAgentConfig } from "../agent/config.js";
import { joinEnforcedCgroup, type Mode, startAgent, stopAgent } from "../agent/control.js";
import { CONTAINERS_CHOICES, type ContainersChoice, containerJudging } from "../agent/runtimes.js";
import { assertSha256, normaliseSha256 } from "../agent/verify-binary.js";
import { HARDEN_LEVELS, type HardenLevel } from "../harden/index.js";
import { hardenJob, hardenStateDir } from "../harden/job.js";
import { detectPlatform } from "../platform/detect.js";
import { loadPolicy } from "../policy/load.js";
import { EXIT, type Io, parse, UsageError } from "./io.js";
import { writeSession } from "./session.js";

export const START_USAGE = `usage: dpndncy start [options]
  Start the agent in the background for this job; returns once every hook is attached.
  --dir DIR               where the log, session and results go (default $CI_PROJECT_DIR/.dpndncy,
                          else ./.dpndncy)
  --agent PATH            the agent binary (default: DIR/bin/dpndncy-agent after --agent-url)
  --agent-url URL         download the agent from URL (needs --agent-sha256)
  --agent-sha256 HEX      the SHA-256 the agent must have; checked before it is executed
  --mode MODE             observe | learn | enforce (default observe)
  --policy FILE           policy file (YAML); its sensitive paths and readers go to the agent
  --sensitive-path P      extra sensitive path (repeatable)
  --harden LEVEL          none | sudo | sudo-and-containers: once armed, take sudo (and the
                          Docker socket) away from this user; only stopping the agent stays
  --containers WHEN       enforce: judge every container on this host by the job's policy:
                          auto (default: on a single-job host, i.e. a GitHub-hosted runner),
                          on (this host runs this job only), off (only the cgroups named below)
  --container-cgroup CG   enforce: a cgroup where the runtime puts the job's containers, judged
                          like the job (repeatable; docs/containers.md)
  --container-slice CG    enforce: a slice (system.slice) whose docker-/libpod-<id>.scope
                          cgroups are judged, nothing else in it (repeatable)
  --runtime-cgroup CG     enforce: the runtime daemon's cgroup: image pulls and Docker's
                          embedded DNS judged too (repeatable)
exit: 0 armed, 2 usage error, 3 bad input (policy, checksum), 4 the download failed (the URL
      and the cause are printed), 5 the agent did not start`;

const OPTIONS = {
  dir: { type: "string" },
  agent: { type: "string" },
  "agent-url": { type: "string" },
  "agent-sha256": { type: "string" },
  mode: { type: "string" },
  policy: { type: "string" },
  "sensitive-path": { type: "string", multiple: true },
  harden: { type: "string" },
  containers: { type: "string" },
  "container-cgroup": { type: "string", multiple: true },
  "container-slice": { type: "string", multiple: true },
  "runtime-cgroup": { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const;

export const defaultDir = (env: Io["env"]) => resolve(env.CI_PROJECT_DIR ?? ".", ".dpndncy");

/** The network failed us (exit 4), as opposed to bad input (3). */
class DownloadError extends Error {}

/** "fetch failed" alone names neither the URL nor why: undici keeps that in the causes. */
export function networkCause(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e; c instanceof Error && parts.length < 5; c = c.cause) {
    const code = (c as { code?: unknown }).code;
    parts.push(
      typeof code === "string" && !c.message.includes(code) ? `${c.message} (${code})` : c.message,
    );
  }
  return parts.join(": ") || String(e);
}

async function download(url: string, dest: string, sha256: string): Promise<void> {
  let res: Response;
  let body: Buffer;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(120_000) });
    if (!res.ok)
      throw new DownloadError(
        `downloading the agent from ${url}: HTTP ${res.status} ${res.statusText}`,
      );
    body = Buffer.from(await res.arrayBuffer());
  } catch (e) {
    if (e instanceof DownloadError) throw e;
    throw new DownloadError(`downloading the agent from ${url} failed: ${networkCause(e)}`);
  }
  const actual = createHash("sha256").update(body).digest("hex");
  if (actual !== sha256) {
    throw new Error(
      `agent from ${url} has SHA-256 ${actual}, expected ${sha256}: refusing to run it`,
    );
  }
  writeFileSync(dest, body, { mode: 0o600 });
  chmodSync(dest, 0o755); // executable only once verified
}

export async function start(argv: string[], io: Io): Promise<number> {
  let v: ReturnType<typeof parse<typeof OPTIONS>>["values"];
  let mode: Mode;
  try {
    const p = parse(argv, OPTIONS);
    v = p.values;
    if (v.help) {
      io.out(`${START_USAGE}\n`);
      return EXIT.OK;
    }
    if (p.positionals.length) throw new UsageError(`unexpected argument ${p.positionals[0]}`);
    mode = (v.mode ?? "observe") as Mode;
    if (!["observe", "learn", "enforce"].includes(mode)) {
      throw new UsageError(`--mode: "${v.mode}" is not one of observe, learn, enforce`);
    }
    if (
      v.containers !== undefined &&
      !CONTAINERS_CHOICES.includes(v.containers as ContainersChoice)
    )
      throw new UsageError(
        `--containers: "${v.containers}" is not one of ${CONTAINERS_CHOICES.join(", ")}`,
      );
    if (!v.agent && !v["agent-url"]) throw new UsageError("give --agent PATH or --agent-url URL");
    if (v["agent-url"] && !v["agent-sha256"]) {
      throw new UsageError(
        "--agent-url needs --agent-sha256: dpndncy never runs an unverified binary",
      );
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`dpndncy start: ${e.message}\n${START_USAGE}\n`);
    return EXIT.USAGE;
  }

  const dir = resolve(v.dir ?? defaultDir(io.env));
  mkdirSync(join(dir, "bin"), { recursive: true });
  let agent: string;
  let config: string | undefined;
  try {
    const sha = v["agent-sha256"]
      ? normaliseSha256(v["agent-sha256"], "--agent-sha256")
      : undefined;
    if (v["agent-url"] && sha) {
      agent = join(dir, "bin", "dpndncy-agent");
      await download(v["agent-url"], agent, sha);
    } else {
      agent = resolve(v.agent ?? "");
      if (sha) await assertSha256(agent, sha);
    }
    const policy = v.policy ? await loadPolicy(v.policy) : undefined;
    const detected = detectPlatform(io.env);
    const judging = containerJudging({
      choice: (v.containers ?? "auto") as ContainersChoice,
      enforce: mode === "enforce",
      env: io.env,
      explicit: {
        containerCgroups: v["container-cgroup"] ?? [],
        containerSlices: v["container-slice"] ?? [],
        runtimeCgroups: v["runtime-cgroup"] ?? [],
      },
      policyResolvers: policy?.policy.dns?.resolvers ?? [],
    });
    for (const l of judging.info) io.err(`dpndncy start: ${l}\n`);
    for (const w of judging.warnings) io.err(`dpndncy start: WARNING ${w}\n`);
    config = join(dir, "agent.conf");
    writeFileSync(
      config,
      renderAgentConfig({
        mode,
        ...policyConfig(policy, { sensitivePaths: v["sensitive-path"] ?? [] }),
        stepMarkers: detected.step.markers,
        ci: { ...detected.identity, alsoMatched: detected.alsoMatched },
        ...judging.config,
      }),
    );
  } catch (e) {
    io.err(`dpndncy start: ${(e as Error).message}\n`);
    return e instanceof DownloadError ? EXIT.SERVICE : EXIT.INPUT;
  }

  const detection = detectPlatform(io.env);
  const elevate = process.getuid?.() === 0 ? [] : ["sudo", "-n"];
  const log = join(dir, "events.ndjson");
  const hardenLevel = (v.harden ?? "none") as HardenLevel;
  if (!HARDEN_LEVELS.includes(hardenLevel)) {
    io.err(`dpndncy start: --harden ${v.harden}: not one of ${HARDEN_LEVELS.join(", ")}\n`);
    return EXIT.USAGE;
  }
  // harden: a root-owned state dir, since the one sudo rule left names it (src/harden/job.ts)
  const stateDir = hardenStateDir(hardenLevel, io.env) ?? join(dir, "state");
  try {
    const started = await startAgent({ agent, log, stateDir, mode, config, elevate });
    if (mode === "enforce") {
      // the agent enforces on a fresh cgroup of its own; the job is the shell that ran us
      try {
        await joinEnforcedCgroup(started.raw, process.ppid, elevate);
      } catch (e) {
        await stopAgent(agent, stateDir, elevate).catch(() => undefined);
        throw e;
      }
    }
    if (hardenLevel !== "none") {
      let h: ReturnType<typeof hardenJob>;
      try {
        h = hardenJob({ level: hardenLevel, agent, stateDir, elevate, cli: process.argv[1] ?? "" });
      } catch (e) {
        await stopAgent(agent, stateDir, elevate).catch(() => undefined);
        throw e;
      }
      agent = h.agent; // stop goes through the root-owned copy
      io.err(
        `dpndncy start: harden ${hardenLevel}: ${h.user} has no sudo for the rest of the job\n`,
      );
    }
    writeSession(dir, {
      version: 1,
      agent,
      log,
      stateDir,
      mode,
      elevate,
      startedAt: new Date().toISOString(),
      pid: started.pid,
      detection,
    });
    const also = detection.alsoMatched.length
      ? ` (also looked like: ${detection.alsoMatched.join(", ")})`
      : "";
    io.out(
      `dpndncy: agent armed (pid ${started.pid}, mode ${mode}, platform ${detection.identity.platform}${also}); log ${log}\n`,
    );
    return EXIT.OK;
  } catch (e) {
    io.err(`dpndncy start: ${(e as Error).message}\n`);
    return 5;
  }
}
