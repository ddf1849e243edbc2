/**
 * Learn mode in the action's post stage: the baseline lives in the Actions cache (src/learn/
 * cache.ts), anomalies become capped warning annotations, the learned policy a file next to the
 * log. Everything here is wiring; the logic is in src/learn/job.ts.
 */
import { join } from "node:path";
import * as cache from "@actions/cache";
import * as core from "@actions/core";
import type { Predicate } from "../trace/types.js";
import { baselineKeys, restoreBaseline, saveBaseline } from "./cache.js";
import { anomalyLine, type LearnJobResult, learnJob } from "./job.js";

const CAP = 8;

export function anomalyAnnotations(r: LearnJobResult): string[] {
  const lines = r.anomalies.slice(0, CAP).map(anomalyLine);
  if (r.anomalies.length > CAP)
    lines.push(`…and ${r.anomalies.length - CAP} more new destinations (see the job summary)`);
  return lines;
}

export async function learnInPost(o: {
  mode: "observe" | "learn" | "enforce";
  window: number;
  predicate: Predicate;
  log: string;
  dir: string;
  env: Readonly<Record<string, string | undefined>>;
}): Promise<LearnJobResult | null> {
  const keys = baselineKeys(o.env);
  const file = join(o.env.RUNNER_TEMP || o.dir, "dpndncy-learn", "baseline.json");
  // outside learn mode a missing cache only means "no baseline": not worth a warning
  const loadWarn = o.mode === "learn" ? core.warning : core.debug;
  const runId = o.env.GITHUB_RUN_ID;
  const result = await learnJob({
    mode: o.mode,
    window: o.window,
    predicate: o.predicate,
    log: o.log,
    jobId: runId
      ? `run:${runId}.${o.env.GITHUB_RUN_ATTEMPT ?? "1"}`
      : `log:${o.predicate.log.sha256.slice(0, 16)}`,
    policyFile: join(o.dir, "dpndncy-policy.yml"),
    store: {
      load: async () => (await restoreBaseline(cache, file, keys, loadWarn)).text,
      save: (text) => saveBaseline(cache, file, keys, text, core.warning),
    },
    warn: core.warning,
  });
  if (result) for (const w of anomalyAnnotations(result)) core.warning(w, { title: "dpndncy" });
  return result;
}
