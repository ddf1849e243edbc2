/**
 * Step ids (`GITHUB_ACTION`: `__run_2`, `checkout`, …) to the names the user wrote. The jobs
 * API lists this job's steps with start and end times but not their ids, so each id is matched
 * to the step whose time window holds the first event seen with that id. Pure, except
 * `firstSeen` (one streaming pass over the log) and `fetchJobSteps` (one API call).
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";

export interface ApiStep {
  name: string;
  number: number;
  started_at: string | null;
  completed_at: string | null;
}

/** The id → name map; ids whose first event falls in no step window are left out. */
export function matchStepNames(
  first: ReadonlyMap<string, string>,
  steps: readonly ApiStep[],
): Record<string, string> {
  const windows = steps
    .filter((s) => s.started_at)
    .map((s) => ({
      name: s.name,
      from: Date.parse(s.started_at as string),
      // GitHub reports whole seconds: a step still running, or ending in the same second, is open-ended
      to: s.completed_at ? Date.parse(s.completed_at) + 999 : Number.POSITIVE_INFINITY,
    }))
    .sort((a, b) => b.from - a.from); // latest start first: the innermost window wins
  const out: Record<string, string> = {};
  for (const [id, ts] of first) {
    const t = Date.parse(ts);
    const w = windows.find((x) => x.from <= t && t <= x.to);
    if (w) out[id] = w.name;
  }
  return out;
}

/** First timestamp per step id, in one pass; lines that do not parse are skipped (the summary counts them). */
export async function firstSeen(log: string): Promise<Map<string, string>> {
  const first = new Map<string, string>();
  const lines = createInterface({
    input: createReadStream(log),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  for await (const line of lines) {
    if (!line.includes('"step":"')) continue;
    try {
      const e = JSON.parse(line) as { step?: unknown; ts?: unknown };
      if (typeof e.step === "string" && typeof e.ts === "string" && !first.has(e.step))
        first.set(e.step, e.ts);
    } catch {
      // not ours to judge here
    }
  }
  return first;
}

export interface JobRef {
  apiUrl: string;
  repository: string;
  runId: string;
  attempt: string;
  runnerName?: string;
  jobName?: string;
  token: string;
}

/** This job's steps from the jobs API (needs `actions: read`); null when it cannot be told. */
export async function fetchJobSteps(j: JobRef): Promise<ApiStep[] | null> {
  const url = `${j.apiUrl.replace(/\/+$/, "")}/repos/${j.repository}/actions/runs/${j.runId}/attempts/${j.attempt}/jobs?per_page=100`;
  const res = await fetch(url, {
    headers: {
      authorization: `Bearer ${j.token}`,
      accept: "application/vnd.github+json",
      "x-github-api-version": "2022-11-28",
    },
    signal: AbortSignal.timeout(5000),
  });
  if (res.status === 403 || res.status === 404) {
    // what a token without `actions: read` gets; say how to fix it, not just the status
    throw new Error(
      `jobs API ${res.status}: the token cannot read this run's jobs; give the job \`permissions: actions: read\``,
    );
  }
  if (!res.ok) throw new Error(`jobs API ${res.status} ${res.statusText}`);
  const body = (await res.json()) as {
    jobs?: { name: string; status: string; runner_name: string | null; steps?: ApiStep[] }[];
  };
  const running = (body.jobs ?? []).filter((x) => x.status === "in_progress");
  const job =
    running.find((x) => j.runnerName && x.runner_name === j.runnerName) ??
    (running.length === 1 ? running[0] : undefined);
  return job?.steps ?? null;
}
