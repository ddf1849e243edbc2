// dpndncy stop: stop the agent started by `dpndncy start`, print the job summary (a
// collapsible section in GitLab's job log) and write it beside the log. Signing is the next
// command, `dpndncy attest`, so a job without Node can stop here and sign in a later job.
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { stopAgent } from "../agent/control.js";
import { renderSummary } from "../report/markdown.js";
import { summarizeFile } from "../trace/summarize.js";
import { ciIdentity } from "./ci.js";
import { formatSummary } from "./format.js";
import { EXIT, type Io, parse, UsageError } from "./io.js";
import { readSession } from "./session.js";
import { defaultDir } from "./start.js";

export const STOP_USAGE = `usage: dpndncy stop [--dir DIR]
  Stop the agent, seal the log, print the summary and write DIR/summary.md.
  --dir DIR   as given to dpndncy start (default $CI_PROJECT_DIR/.dpndncy, else ./.dpndncy)
exit: 0 complete trace, 1 trace incomplete or tampered (files still written), 2 usage,
      3 no session in DIR`;

const OPTIONS = { dir: { type: "string" }, help: { type: "boolean", short: "h" } } as const;

/** GitLab folds sections marked like this in the job log; elsewhere plain headers. */
function section(io: Io, title: string, body: string): void {
  if (io.env.GITLAB_CI === "true") {
    const t = Math.floor(Date.now() / 1000);
    io.out(`\x1b[0Ksection_start:${t}:dpndncy_summary[collapsed=true]\r\x1b[0K${title}\n${body}`);
    io.out(`\x1b[0Ksection_end:${t}:dpndncy_summary\r\x1b[0K\n`);
  } else {
    io.out(`== ${title}\n${body}`);
  }
}

export async function stop(argv: string[], io: Io): Promise<number> {
  let dir: string;
  try {
    const p = parse(argv, OPTIONS);
    if (p.values.help) {
      io.out(`${STOP_USAGE}\n`);
      return EXIT.OK;
    }
    if (p.positionals.length) throw new UsageError(`unexpected argument ${p.positionals[0]}`);
    dir = resolve(p.values.dir ?? defaultDir(io.env));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`dpndncy stop: ${e.message}\n${STOP_USAGE}\n`);
    return EXIT.USAGE;
  }
  let session: ReturnType<typeof readSession>;
  try {
    session = readSession(dir);
  } catch (e) {
    io.err(`dpndncy stop: ${(e as Error).message}\n`);
    return EXIT.INPUT;
  }
  let agentComplete = false;
  try {
    const { stats, stderr } = await stopAgent(session.agent, session.stateDir, session.elevate);
    agentComplete = stats.complete;
    if (!stats.complete)
      io.err(`dpndncy stop: WARNING: the trace is INCOMPLETE. ${stderr.trim()}\n`);
  } catch (e) {
    io.err(
      `dpndncy stop: WARNING: stopping the agent failed, the trace is INCOMPLETE: ${(e as Error).message}\n`,
    );
  }
  const predicate = await summarizeFile(session.log, { ci: ciIdentity(io.env) });
  writeFileSync(join(dir, "summary.md"), renderSummary(predicate));
  section(io, "dpndncy runtime trace", formatSummary(predicate));
  if (!predicate.integrity.stopped_cleanly || !agentComplete) {
    io.err(
      `dpndncy stop: WARNING: trace problems: ${predicate.integrity.problems.join(", ") || "agent stop failed"}\n`,
    );
    return EXIT.FAILED;
  }
  return EXIT.OK;
}
