// `dpndncy-agent daemon` for the kernel tests (docs/daemon.md): started with a jobs dir and a state
// dir of the test's own, stopped at cleanup; its control stream (stdout, NDJSON) read as it goes.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { AGENT, onCleanup, tempDir } from "./env.js";
import { type Background, poll, run, spawnBackground } from "./proc.js";

export type Ctl = Record<string, unknown> & { type: string };

export interface Daemon {
  bg: Background;
  jobsDir: string;
  lines(): Ctl[];
  /** Resolves with the first control line for which pred holds. */
  waitFor(pred: (c: Ctl) => boolean, what: string, timeoutMs?: number): Promise<Ctl>;
}

export async function startDaemon(args: string[], prefix: string[] = []): Promise<Daemon> {
  const jobsDir = tempDir("jobs");
  // the state dir: the test's own, unless the test names one (the default is /run/dpndncy-daemon)
  const named = args.indexOf("--state-dir");
  const stateDir = named >= 0 ? String(args[named + 1]) : join(tempDir("state"), "daemon");
  const state = named >= 0 ? [] : ["--state-dir", stateDir];
  const bg = spawnBackground([
    ...prefix,
    AGENT,
    "daemon",
    "--jobs-dir",
    jobsDir,
    "--job-idle",
    "1",
    ...state,
    ...args,
  ]);
  // a daemon that did not stop within the grace period (SIGKILL) leaves its enforce pins: removed
  // as an operator would (`stop --state-dir`), so that a failing test leaves nothing behind
  onCleanup(async () => {
    await bg.stop();
    if (existsSync(stateDir)) await run([AGENT, "stop", "--state-dir", stateDir]);
  });
  const lines = (): Ctl[] =>
    bg
      .stdout()
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as Ctl);
  const waitFor = async (pred: (c: Ctl) => boolean, what: string, timeoutMs = 20_000) => {
    const got = await poll(() => lines().find(pred), timeoutMs);
    if (!got)
      throw new Error(
        `daemon did not report ${what}\nstdout:\n${bg.stdout()}\nstderr:\n${bg.stderr()}`,
      );
    return got;
  };
  await waitFor((c) => c.type === "daemon-start", "daemon-start", 30_000);
  return { bg, jobsDir, lines, waitFor };
}
