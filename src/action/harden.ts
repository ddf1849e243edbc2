/**
 * The action's `harden` input: after the agent is armed, take sudo (and optionally the Docker
 * socket) away from the runner user for every later step (src/harden/job.ts). The post step
 * then stops the agent through the one sudo rule left.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as core from "@actions/core";
import type { HardenLevel } from "../harden/index.js";
import { hardenJob as run, hardenStateDir as stateDirFor } from "../harden/job.js";

export function hardenStateDir(level: HardenLevel): string | undefined {
  return stateDirFor(level, process.env);
}

/** Returns the installed (root-owned) agent path that post must use, or undefined. */
export function hardenJob(
  level: HardenLevel,
  agent: string,
  stateDir: string,
  elevate: string[],
): string | undefined {
  if (level === "none") return undefined;
  const cli = join(dirname(fileURLToPath(import.meta.url)), "cli.js");
  const h = run({ level, agent, stateDir, elevate, cli });
  core.info(
    `dpndncy harden: ${h.user} has no sudo for the rest of the job${level === "sudo-and-containers" ? " and no Docker socket" : ""}; only stopping the agent stays allowed${h.notes.length ? ` (${h.notes.join("; ")})` : ""}`,
  );
  return h.agent;
}
