/**
 * The action's `harden` input: after the agent is armed, take sudo (and optionally the Docker
 * socket) away from the runner user for every later step. Runs `dpndncy harden` as root; the
 * one sudo rule left is the agent's `stop` from a root-owned copy with a root-owned state dir,
 * so the post step can still stop the agent and seal the trace.
 */
import { spawnSync } from "node:child_process";
import { userInfo } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as core from "@actions/core";

type Level = "none" | "sudo" | "sudo-and-containers";

/** The root-owned state dir harden needs (under /run), or undefined when not hardening. */
export function hardenStateDir(level: Level): string | undefined {
  if (level === "none") return undefined;
  const id = [process.env.GITHUB_RUN_ID, process.env.GITHUB_RUN_ATTEMPT, process.env.GITHUB_JOB]
    .filter(Boolean)
    .join("-")
    .replace(/[^A-Za-z0-9_.-]/g, "_");
  return `/run/dpndncy-state/${id || process.pid}`;
}

/** Returns the installed (root-owned) agent path that post must use, or undefined. */
export function hardenJob(
  level: Level,
  agent: string,
  stateDir: string,
  elevate: string[],
): string | undefined {
  if (level === "none") return undefined;
  const user = process.env.SUDO_USER || userInfo().username;
  const cli = join(dirname(fileURLToPath(import.meta.url)), "cli.js");
  const argv = [
    ...elevate,
    process.execPath,
    cli,
    "harden",
    "--user",
    user,
    "--install-agent",
    agent,
    "--state-dir",
    stateDir,
    ...(level === "sudo-and-containers" ? ["--containers"] : []),
  ];
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd as string, args, { encoding: "utf8" });
  if (r.status !== 0)
    throw new Error(`dpndncy harden failed (exit ${r.status}): ${(r.stderr ?? "").trim()}`);
  const out = JSON.parse(r.stdout) as { agent: string; notes: string[] };
  core.info(
    `dpndncy harden: ${user} has no sudo for the rest of the job${level === "sudo-and-containers" ? " and no Docker socket" : ""}${out.notes.length ? ` (${out.notes.join("; ")})` : ""}`,
  );
  return out.agent;
}
