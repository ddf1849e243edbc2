/**
 * Shared by pre and main: acquire the verified agent, start it, and record in the action's
 * state where everything lives so post can find it (STATE_* reaches post as env).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import * as core from "@actions/core";
import { acquireAgent, agentSource } from "../agent/acquire.js";
import { policyConfig, renderAgentConfig } from "../agent/config.js";
import { joinEnforcedCgroup, startAgent } from "../agent/control.js";
import { loadReleasePin } from "../agent/release.js";
import { containerJudging } from "../agent/runtimes.js";
import { detectPlatform } from "../platform/detect.js";
import { loadPolicy } from "../policy/load.js";
import { defaultGithubAllow } from "./github-endpoints.js";
import { hardenJob, hardenStateDir } from "./harden.js";
import { parseInputs } from "./inputs.js";
import { STATE } from "./state.js";

export function elevation(): string[] {
  return process.getuid?.() === 0 ? [] : ["sudo", "-n"];
}

export async function startMonitoring(stage: "pre" | "main"): Promise<void> {
  const t0 = performance.now();
  const inputs = parseInputs((n) => core.getInput(n));
  const temp = process.env.RUNNER_TEMP;
  if (!temp) throw new Error("RUNNER_TEMP is not set: is this running under a GitHub runner?");
  const dir = join(temp, "dpndncy");
  await mkdir(dir, { recursive: true });

  const { path: agent, cached } = await acquireAgent(
    agentSource(loadReleasePin(), {
      agentUrl: inputs.agentUrl,
      agentSha256: inputs.agentSha256,
      runnerArch: process.env.RUNNER_ARCH,
      nodeArch: process.arch,
    }),
  );
  const log = join(dir, "events.ndjson");
  // harden: a root-owned state dir (the one sudo rule left names it; the user must not swap it)
  const stateDir = hardenStateDir(inputs.harden) ?? join(dir, "state");
  // step attribution: the platform's step markers and the job identity for the start record
  const detected = detectPlatform(process.env);
  // A policy file in the repository (as learn mode prints it); `allowed-endpoints` and
  // `sensitive-paths` add to it. A bad policy fails here, before anything is attached.
  const policy = inputs.policy
    ? await loadPolicy(resolve(process.env.GITHUB_WORKSPACE ?? ".", inputs.policy))
    : undefined;
  // enforce: containers the job starts are judged where the runtime puts them; on a
  // GitHub-hosted runner every container on the VM by default (`containers: off` opts out)
  const judging = containerJudging({
    choice: inputs.containers,
    enforce: inputs.mode === "enforce",
    env: process.env,
    explicit: inputs,
    policyResolvers: policy?.policy.dns?.resolvers ?? [],
  });
  for (const l of judging.info) core.info(`dpndncy ${l}`);
  for (const w of judging.warnings) core.warning(`dpndncy ${w}`);
  const config = join(dir, "agent.conf");
  await writeFile(
    config,
    renderAgentConfig({
      mode: inputs.mode,
      ...policyConfig(policy, {
        sensitivePaths: inputs.sensitivePaths,
        allow: [
          ...inputs.allowedEndpoints,
          ...(inputs.mode === "enforce" &&
          inputs.allowGithubEndpoints &&
          detected.identity.platform === "github"
            ? defaultGithubAllow(inputs.sign, [inputs.fulcioUrl, inputs.rekorUrl, inputs.tsaUrl])
            : []),
        ],
      }),
      stepMarkers: detected.step.markers,
      ci: { ...detected.identity, alsoMatched: detected.alsoMatched },
      // enforce: Runner.Worker (our parent) joins the enforced cgroup so every later step is
      // judged, but is itself exempt: its own traffic to GitHub keeps working
      ...(inputs.mode === "enforce" ? { exemptPids: [process.ppid] } : {}),
      // tamper evidence: the runner worker (our parent) holds the job's secrets
      protectPids: [process.ppid],
      ...judging.config,
    }),
  );
  const started = await startAgent({
    agent,
    log,
    stateDir,
    mode: inputs.mode,
    config,
    elevate: elevation(),
  });
  if (inputs.mode === "enforce") {
    const cg = await joinEnforcedCgroup(started.raw, process.ppid, elevation());
    core.info(
      `dpndncy enforce: runner worker ${process.ppid} (exempt) moved into ${cg}; its steps are judged`,
    );
  }
  const hardened = hardenJob(inputs.harden, agent, stateDir, elevation());
  core.saveState(STATE.agent, hardened ?? agent);
  core.saveState(STATE.log, log);
  core.saveState(STATE.stateDir, stateDir);
  core.saveState(STATE.startedIn, stage);
  core.saveState(STATE.mode, inputs.mode);
  const ms = Math.round(performance.now() - t0);
  core.info(
    `dpndncy agent armed in ${ms} ms (pid ${started.pid}, ${cached ? "cached" : "downloaded"} binary, mode ${inputs.mode}); attach points: ${JSON.stringify(started.attach)}`,
  );
}
