/**
 * Learn mode at job end (the action's post stage; any CI with a file-backed store): restore the
 * baseline, flag anomalies against it, merge this job, save, derive the policy and say whether
 * it is stable. Storage and reporting are injected so this runs the same under test.
 */
import { writeFile } from "node:fs/promises";
import type { Predicate } from "../trace/types.js";
import { type Anomaly, anomalies, describeProcess, withAncestry } from "./anomalies.js";
import {
  type Baseline,
  loadBaselineText,
  mergeBaseline,
  type Stability,
  serializeBaseline,
  stability,
} from "./baseline.js";
import { derive, policySha256, renderPolicyYaml } from "./derive.js";

/** Where the baseline lives between jobs: the Actions cache, a CI cache directory, a file. */
export interface BaselineStore {
  /** The stored text, or null when there is none; failures are reported by the store, not thrown. */
  load(): Promise<string | null>;
  save(text: string): Promise<boolean>;
}

export interface LearnJobInput {
  mode: "observe" | "learn" | "enforce";
  window: number;
  predicate: Predicate;
  /** The NDJSON log, for the ancestry of anomalous connects. */
  log: string;
  jobId: string;
  /** Where the learned policy is written (learn mode). */
  policyFile: string;
  store: BaselineStore;
  warn(message: string): void;
}

export interface LearnJobResult {
  anomalies: Anomaly[];
  baseline: Baseline;
  stability: Stability;
  /** learn mode only */
  policy?: { file: string; yaml: string; sha256: string; entries: number };
  saved: boolean;
  /** Markdown for the job summary. */
  markdown: string;
}

/** null: not learn mode and no baseline to compare with, so nothing to do. */
export async function learnJob(i: LearnJobInput): Promise<LearnJobResult | null> {
  const text = await i.store.load();
  if (text === null && i.mode !== "learn") return null;
  const loaded = loadBaselineText(text, i.window);
  if (loaded.problem) i.warn(`dpndncy: ${loaded.problem}`);
  const found = await withAncestry(i.log, anomalies(loaded.baseline, i.predicate));
  const { baseline } = mergeBaseline(loaded.baseline, i.predicate, i.jobId, i.window);
  const saved = await i.store.save(serializeBaseline(baseline));
  const stable = stability(baseline, i.window);
  let policy: LearnJobResult["policy"];
  if (i.mode === "learn") {
    const d = derive(baseline);
    const yaml = renderPolicyYaml(d.policy, {
      jobs: baseline.total_jobs,
      stable: stable.stable,
      excluded: d.excluded,
      wildcards: d.wildcards,
    });
    await writeFile(i.policyFile, yaml);
    policy = {
      file: i.policyFile,
      yaml,
      sha256: policySha256(d.policy),
      entries: d.policy.egress?.allow?.length ?? 0,
    };
  }
  const result = {
    anomalies: found,
    baseline,
    stability: stable,
    saved,
    ...(policy ? { policy } : {}),
  };
  return { ...result, markdown: renderLearnSummary(result, loaded.problem) };
}

const esc = (s: string): string => s.replace(/[|\\`*_<>[\]]/g, (c) => `\\${c}`).replace(/\n/g, " ");
const MAX_ROWS = 50;

export function anomalyLine(a: Anomaly): string {
  const who = describeProcess(a);
  return `new egress (${a.why}): ${a.key}:${a.port}/${a.proto}${
    a.key !== a.addr ? ` (${a.addr})` : ""
  } — steps: ${a.steps.join(", ") || "(unknown)"}${who ? ` — process: ${who}` : ""}`;
}

export function renderLearnSummary(r: Omit<LearnJobResult, "markdown">, problem?: string): string {
  const out: string[] = [];
  if (r.anomalies.length > 0) {
    out.push(`### New egress since the baseline (${r.anomalies.length})\n`);
    out.push(
      "Destinations no earlier job of this workflow and job reached (baseline of the last jobs).\n",
    );
    out.push("| destination | address | port | why | steps | process |\n|---|---|---|---|---|---|");
    for (const a of r.anomalies.slice(0, MAX_ROWS)) {
      out.push(
        `| ${esc(a.key)} | ${esc(a.addr)} | ${a.port}/${a.proto} | ${a.why} | ${esc(a.steps.join(", ") || "(unknown)")} | ${esc(describeProcess(a) || "—")} |`,
      );
    }
    if (r.anomalies.length > MAX_ROWS) out.push(`\n_…and ${r.anomalies.length - MAX_ROWS} more_`);
    out.push("");
  }
  if (r.policy) {
    out.push("### Learned egress policy\n");
    if (problem) out.push(`> [!WARNING]\n> ${esc(problem)}\n`);
    if (!r.saved)
      out.push(
        "> [!WARNING]\n> The baseline could not be saved; the next job starts again from its own trace.\n",
      );
    out.push(
      `From ${r.baseline.total_jobs} job${r.baseline.total_jobs === 1 ? "" : "s"} · ${r.policy.entries} allow entries · policy sha256 \`${r.policy.sha256}\` · ${r.stability.reason}.\n`,
    );
    out.push(`\`\`\`yaml\n${r.policy.yaml}\`\`\`\n`);
    if (r.stability.stable) {
      out.push(
        [
          "**The policy is stable.** Commit it as `.github/dpndncy-policy.yml` and switch this job to enforce:",
          "",
          "```yaml",
          "    with:",
          "      mode: enforce",
          "      policy: .github/dpndncy-policy.yml",
          "```",
          "",
        ].join("\n"),
      );
    }
  } else if (problem) {
    out.push(`> [!WARNING]\n> ${esc(problem)}\n`);
  }
  return out.join("\n");
}
