/**
 * Hardening a running job, shared by the action (input `harden`) and `dpndncy start --harden`
 * (the GitLab component): the agent's state dir must be root-owned (the one sudo rule left
 * names it), and `dpndncy harden` runs as root with the agent to install and keep stoppable.
 */
import { spawnSync } from "node:child_process";
import { userInfo } from "node:os";
import type { HardenLevel } from "./index.js";

/** A root-owned state dir under /run for a hardened job, or undefined when not hardening. */
export function hardenStateDir(level: HardenLevel, env: NodeJS.ProcessEnv): string | undefined {
  if (level === "none") return undefined;
  const id = [env.GITHUB_RUN_ID, env.GITHUB_RUN_ATTEMPT, env.GITHUB_JOB, env.CI_JOB_ID]
    .filter(Boolean)
    .join("-")
    .replace(/[^A-Za-z0-9_.-]/g, "_");
  return `/run/dpndncy-state/${id || process.pid}`;
}

export interface Hardened {
  /** The root-owned copy of the agent: stop the agent with this one from now on. */
  agent: string;
  user: string;
  notes: string[];
}

/** Runs `[...elevate] node CLI harden ...` for the invoking user; throws when it fails. */
export function hardenJob(o: {
  level: Exclude<HardenLevel, "none">;
  agent: string;
  stateDir: string;
  elevate: string[];
  cli: string;
}): Hardened {
  const user = process.env.SUDO_USER || userInfo().username;
  const argv = [
    ...o.elevate,
    process.execPath,
    o.cli,
    "harden",
    "--user",
    user,
    "--install-agent",
    o.agent,
    "--state-dir",
    o.stateDir,
    ...(o.level === "sudo-and-containers" ? ["--containers"] : []),
  ];
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd as string, args, { encoding: "utf8" });
  if (r.status !== 0)
    throw new Error(`dpndncy harden failed (exit ${r.status}): ${(r.stderr ?? "").trim()}`);
  const out = JSON.parse(r.stdout) as { agent: string; notes: string[] };
  return { agent: out.agent, user, notes: out.notes };
}
