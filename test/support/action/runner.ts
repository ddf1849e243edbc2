// A GitHub runner stand-in for the action's end-to-end tests: runs dist/{pre,main,post}.js as
// separate node processes the way the runner does, with INPUT_*, the GITHUB_STATE file carried
// into later stages as STATE_*, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and RUNNER_TEMP; and a local
// OIDC token endpoint speaking the runner's protocol (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type RunResult, run } from "../kernel/proc.js";

/** Parses the runner's file-command format: `name<<DELIM\nvalue\nDELIM` (and plain `k=v`). */
export function parseFileCommands(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const [, name, delim] = heredoc as unknown as [string, string, string];
      const value: string[] = [];
      for (i++; i < lines.length && lines[i] !== delim; i++) value.push(lines[i] ?? "");
      out[name] = value.join("\n");
    } else if (line.includes("=")) {
      const j = line.indexOf("=");
      out[line.slice(0, j)] = line.slice(j + 1);
    }
  }
  return out;
}

export interface Job {
  root: string;
  env: NodeJS.ProcessEnv;
  stage(name: "pre" | "main" | "post"): Promise<RunResult>;
  state(): Record<string, string>;
  outputs(): Record<string, string>;
  summary(): string;
}

export function newJob(
  root: string,
  inputs: Record<string, string>,
  extraEnv: NodeJS.ProcessEnv,
  /** the action's bundle directory (a copy of dist/, e.g. with a release pin of the test's) */
  dist = "dist",
): Job {
  for (const d of ["temp", "toolcache", "files"]) mkdirSync(join(root, d), { recursive: true });
  const files = {
    state: join(root, "files/state"),
    output: join(root, "files/output"),
    summary: join(root, "files/summary.md"),
  };
  for (const f of Object.values(files)) writeFileSync(f, "");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GITHUB_ACTIONS: "true",
    RUNNER_TEMP: join(root, "temp"),
    RUNNER_TOOL_CACHE: join(root, "toolcache"),
    GITHUB_STATE: files.state,
    GITHUB_OUTPUT: files.output,
    GITHUB_STEP_SUMMARY: files.summary,
    ...extraEnv,
  };
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v;
  const readState = () => parseFileCommands(readFileSync(files.state, "utf8"));
  return {
    root,
    env,
    state: readState,
    outputs: () => parseFileCommands(readFileSync(files.output, "utf8")),
    summary: () => readFileSync(files.summary, "utf8"),
    stage: (name) => {
      const stateEnv = Object.fromEntries(
        Object.entries(readState()).map(([k, v]) => [`STATE_${k}`, v]),
      );
      return run([process.execPath, join(dist, `${name}.js`)], {
        env: { ...env, ...stateEnv },
        timeoutMs: 60_000,
      });
    },
  };
}

/** GET {url}&audience=X with `Authorization: bearer <request token>` → {"value": token}. */
export async function startOidcStandIn(
  requestToken: string,
  mint: (audience: string) => string,
): Promise<{ url: string; audiences: string[]; close(): Promise<void> }> {
  const audiences: string[] = [];
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    if (req.headers.authorization?.toLowerCase() !== `bearer ${requestToken}`.toLowerCase()) {
      res.writeHead(401).end();
      return;
    }
    const aud = u.searchParams.get("audience") ?? "";
    audiences.push(aud);
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ value: mint(aud) }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/token?api-version=2.0`,
    audiences,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
