// dpndncy learn LOGS… [--baseline FILE] [--jobs N] [--out FILE]: the enforce-ready policy
// learned from agent logs (one log = one job), optionally accumulated in a baseline file
// between runs (GitLab job cache, any CI with a cache directory, a laptop).
import { readFile, rename, writeFile } from "node:fs/promises";
import { type Anomaly, anomalies, withAncestry } from "../learn/anomalies.js";
import {
  type Baseline,
  loadBaselineText,
  mergeBaseline,
  serializeBaseline,
  stability,
} from "../learn/baseline.js";
import { derive, renderPolicyYaml } from "../learn/derive.js";
import { anomalyLine } from "../learn/job.js";
import { summarizeFile } from "../trace/summarize.js";
import { EXIT, type Io, parse, UsageError } from "./io.js";

export const LEARN_USAGE = `usage: dpndncy learn LOG… [--baseline FILE] [--jobs N] [--out FILE]
  Learn the egress policy enforce mode needs from agent logs, one log per job, in order.
  Prints the policy (YAML, schema/policy.v1.json) to stdout, or writes --out.
  --baseline FILE  read the baseline of earlier jobs from FILE (absent: start empty; corrupt:
                   reported and rebuilt), merge the logs into it and write it back; destinations
                   no earlier job reached are reported on stderr
  --jobs N         the window: stable once N jobs in a row added nothing new (default 5)
  --out FILE       write the policy to FILE instead of stdout
exit: 0 learned, 2 usage error, 3 a log or the baseline could not be read or written`;

const OPTIONS = {
  baseline: { type: "string" },
  jobs: { type: "string" },
  out: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export async function learn(argv: string[], io: Io): Promise<number> {
  let logs: string[];
  let baselineFile: string | undefined;
  let out: string | undefined;
  let window = 5;
  try {
    const p = parse(argv, OPTIONS);
    if (p.values.help) {
      io.out(`${LEARN_USAGE}\n`);
      return EXIT.OK;
    }
    logs = p.positionals;
    if (logs.length === 0) throw new UsageError("missing LOG");
    if (p.values.jobs !== undefined) {
      if (
        !/^\d{1,3}$/.test(p.values.jobs) ||
        Number(p.values.jobs) < 1 ||
        Number(p.values.jobs) > 100
      )
        throw new UsageError(`--jobs: "${p.values.jobs}" is not a number 1-100`);
      window = Number(p.values.jobs);
    }
    baselineFile = p.values.baseline;
    out = p.values.out;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`dpndncy learn: ${e.message}\n${LEARN_USAGE}\n`);
    return EXIT.USAGE;
  }

  let baseline: Baseline;
  {
    let text: string | null = null;
    if (baselineFile) {
      try {
        text = await readFile(baselineFile, "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
          io.err(`dpndncy learn: cannot read ${baselineFile}: ${(e as Error).message}\n`);
          return EXIT.INPUT;
        }
      }
    }
    const loaded = loadBaselineText(text, window);
    if (loaded.problem) io.err(`dpndncy learn: ${baselineFile}: ${loaded.problem}\n`);
    baseline = loaded.baseline;
  }

  for (const log of logs) {
    let predicate: Awaited<ReturnType<typeof summarizeFile>>;
    try {
      predicate = await summarizeFile(log, { ci: null });
    } catch (e) {
      io.err(`dpndncy learn: cannot read ${log}: ${(e as Error).message}\n`);
      return EXIT.INPUT;
    }
    if (!predicate.integrity.stopped_cleanly) {
      io.err(
        `dpndncy learn: ${log}: the trace is incomplete or damaged (${predicate.integrity.problems.join(", ")}); learning from what it holds\n`,
      );
    }
    if (baselineFile) {
      const found: Anomaly[] = await withAncestry(log, anomalies(baseline, predicate));
      for (const a of found) io.err(`dpndncy learn: ${log}: ${anomalyLine(a)}\n`);
    }
    // one log = one job; its content hash names it, so merging the same log twice is a no-op
    baseline = mergeBaseline(
      baseline,
      predicate,
      `log:${predicate.log.sha256.slice(0, 16)}`,
      window,
    ).baseline;
  }

  const st = stability(baseline, window);
  const d = derive(baseline);
  const yaml = renderPolicyYaml(d.policy, {
    jobs: baseline.total_jobs,
    stable: st.stable,
    excluded: d.excluded,
    wildcards: d.wildcards,
  });
  try {
    if (baselineFile) {
      // write-then-rename: an interrupted run never leaves a half-written baseline
      await writeFile(`${baselineFile}.tmp`, serializeBaseline(baseline));
      await rename(`${baselineFile}.tmp`, baselineFile);
    }
    if (out) await writeFile(out, yaml);
  } catch (e) {
    io.err(`dpndncy learn: ${(e as Error).message}\n`);
    return EXIT.INPUT;
  }
  if (!out) io.out(yaml);
  io.err(`dpndncy learn: ${st.reason}\n`);
  return EXIT.OK;
}
