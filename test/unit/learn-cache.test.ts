// The cache adapter against a local stand-in of the Actions cache service (the real
// @actions/cache client: Twirp JSON, signed-URL blob upload and download, tar), and its error
// handling with an injected fake: a cache failure is a warning, never a failed job.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as cache from "@actions/cache";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBaselineText, parseBaseline } from "../../src/learn/baseline.js";
import {
  baselineKeys,
  type CacheClient,
  restoreBaseline,
  saveBaseline,
} from "../../src/learn/cache.js";
import { type BaselineStore, learnJob } from "../../src/learn/job.js";
import { parsePolicy } from "../../src/policy/load.js";
import { summarizeFile } from "../../src/trace/summarize.js";
import { type CacheStandIn, startCacheStandIn } from "../support/learn/cache-stand-in.js";
import { THREE_JOBS, writeJobLog } from "../support/learn/logs.js";

const dir = mkdtempSync(join(tmpdir(), "dpndncy-learn-cache-"));
const file = join(dir, "runner-temp", "dpndncy-learn", "baseline.json");
const env = (run: number) => ({
  GITHUB_REPOSITORY: "acme/app",
  GITHUB_WORKFLOW_REF: "acme/app/.github/workflows/ci.yml@refs/heads/main",
  GITHUB_JOB: "build",
  GITHUB_RUN_ID: String(1000 + run),
  GITHUB_RUN_ATTEMPT: "1",
});

describe("baselineKeys", () => {
  it("keys by repository, workflow file and job; saves per run, restores by prefix", () => {
    expect(baselineKeys(env(1))).toEqual({
      key: "dpndncy-baseline-acme_app-.github_workflows_ci.yml-build-1001-1",
      restorePrefix: "dpndncy-baseline-acme_app-.github_workflows_ci.yml-build-",
    });
    // no commas (cache keys may not contain them), bounded length
    const odd = baselineKeys({ GITHUB_WORKFLOW: "CI, nightly", GITHUB_JOB: "x".repeat(500) });
    expect(odd.key).not.toContain(",");
    expect(odd.key.length).toBeLessThan(512);
  });
});

describe("against a local stand-in of the cache service", () => {
  let svc: CacheStandIn;
  const saved: Record<string, string | undefined> = {};
  beforeAll(async () => {
    svc = await startCacheStandIn();
    const set = {
      ACTIONS_RESULTS_URL: svc.url,
      ACTIONS_CACHE_SERVICE_V2: "true",
      ACTIONS_RUNTIME_TOKEN: svc.token,
      GITHUB_WORKSPACE: dir,
      RUNNER_TEMP: join(dir, "runner-temp"),
    };
    for (const [k, v] of Object.entries(set)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
  });
  afterAll(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await svc?.close();
  });

  it("three jobs: nothing to restore, then each job restores the newest baseline and saves its own", async () => {
    const warnings: string[] = [];
    const warn = (m: string) => void warnings.push(m);
    const results = [];
    for (const [i, hits] of THREE_JOBS.entries()) {
      const log = writeJobLog(dir, `job${i}.ndjson`, hits, `2026-11-2${i + 1}T10:00:00Z`);
      const keys = baselineKeys(env(i));
      const store: BaselineStore = {
        load: async () => (await restoreBaseline(cache, file, keys, warn)).text,
        save: (text) => saveBaseline(cache, file, keys, text, warn),
      };
      const r = await learnJob({
        mode: "learn",
        window: 5,
        predicate: await summarizeFile(log),
        log,
        jobId: `run:${1000 + i}.1`,
        policyFile: join(dir, `policy${i}.yml`),
        store,
        warn,
      });
      results.push(r);
    }
    expect(warnings).toEqual([]);
    expect(results.map((r) => r?.saved)).toEqual([true, true, true]);
    expect(results.map((r) => r?.baseline.total_jobs)).toEqual([1, 2, 3]);
    expect(svc.entries.map((e) => e.key)).toEqual([0, 1, 2].map((i) => baselineKeys(env(i)).key));
    expect(svc.calls.filter((c) => c === "GET blob")).toHaveLength(2);
    // the third job saw anomalies against the second's baseline, and wrote the policy
    expect(results[2]?.anomalies.map((a) => a.key)).toContain("c.pkg.example.net");
    const yaml = readFileSync(join(dir, "policy2.yml"), "utf8");
    expect(parsePolicy(yaml, "policy2.yml").policy.egress?.allow).toContain("*.example.net:443");
    expect(results[2]?.markdown).toContain("### Learned egress policy");
    expect(results[2]?.markdown).toContain("### New egress since the baseline");
  });

  it("a corrupt baseline in the cache is reported and rebuilt, not trusted", async () => {
    const warnings: string[] = [];
    const warn = (m: string) => void warnings.push(m);
    // a job stores garbage under a newer key of the same job
    expect(await saveBaseline(cache, file, baselineKeys(env(50)), "{garbage", warn)).toBe(true);
    const restored = await restoreBaseline(cache, file, baselineKeys(env(51)), warn);
    expect(restored.matchedKey).toBe(baselineKeys(env(50)).key);
    const loaded = loadBaselineText(restored.text, 5);
    expect(loaded.problem).toMatch(/corrupt .*not JSON.*rebuilt/);
    expect(loaded.baseline.total_jobs).toBe(0);

    const log = writeJobLog(dir, "after-corrupt.ndjson", THREE_JOBS[0] ?? []);
    const keys = baselineKeys(env(52));
    const r = await learnJob({
      mode: "learn",
      window: 5,
      predicate: await summarizeFile(log),
      log,
      jobId: "run:1052.1",
      policyFile: join(dir, "policy-rebuilt.yml"),
      store: {
        load: async () => (await restoreBaseline(cache, file, keys, warn)).text,
        save: (text) => saveBaseline(cache, file, keys, text, warn),
      },
      warn,
    });
    expect(warnings.join("\n")).toMatch(
      /the learn baseline is corrupt .* not trusted and is rebuilt/,
    );
    expect(r?.baseline.total_jobs).toBe(1);
    expect(r?.anomalies).toEqual([]); // nothing trusted to compare with
    expect(r?.markdown).toContain("not trusted and is rebuilt");
    // and the rebuilt one is what the next job gets
    const next = await restoreBaseline(cache, file, baselineKeys(env(53)), warn);
    expect(parseBaseline(next.text ?? "").total_jobs).toBe(1);
  });
});

describe("cache failures are warnings", () => {
  const fake = (o: Partial<CacheClient>): CacheClient => ({
    isFeatureAvailable: () => true,
    restoreCache: async () => undefined,
    saveCache: async () => 1,
    ...o,
  });
  const keys = baselineKeys(env(9));

  it("restore: unavailable service, a throwing client, an entry without the file", async () => {
    const w: string[] = [];
    const warn = (m: string) => void w.push(m);
    expect(
      await restoreBaseline(fake({ isFeatureAvailable: () => false }), file, keys, warn),
    ).toEqual({
      text: null,
    });
    expect(
      await restoreBaseline(
        fake({
          restoreCache: async () => {
            throw new Error("Key Validation Error");
          },
        }),
        file,
        keys,
        warn,
      ),
    ).toEqual({ text: null });
    // a hit that restored nothing reads as an empty (so corrupt) baseline, never as "none"
    const empty = await restoreBaseline(fake({ restoreCache: async () => "k" }), file, keys, warn);
    expect(empty).toEqual({ text: "", matchedKey: "k" });
    expect(loadBaselineText(empty.text, 5).problem).toContain("not JSON");
    expect(w).toEqual([
      "dpndncy learn: the Actions cache service is not available; no baseline restored",
      "dpndncy learn: restoring the baseline from the cache failed: Key Validation Error",
    ]);
  });

  it("save: refused (-1) or throwing", async () => {
    const w: string[] = [];
    const warn = (m: string) => void w.push(m);
    expect(await saveBaseline(fake({ saveCache: async () => -1 }), file, keys, "{}", warn)).toBe(
      false,
    );
    expect(
      await saveBaseline(
        fake({
          saveCache: async () => {
            throw new Error("boom");
          },
        }),
        file,
        keys,
        "{}",
        warn,
      ),
    ).toBe(false);
    expect(w[0]).toContain("was not saved to the cache");
    expect(w[1]).toBe("dpndncy learn: saving the baseline to the cache failed: boom");
  });

  it("once stable, the summary shows the exact lines to switch to enforce", async () => {
    const log = writeJobLog(dir, "stable.ndjson", THREE_JOBS[0] ?? []);
    const p = await summarizeFile(log);
    let stored: string | null = null;
    const store: BaselineStore = {
      load: async () => stored,
      save: async (t) => {
        stored = t;
        return true;
      },
    };
    let last: Awaited<ReturnType<typeof learnJob>> = null;
    for (let i = 0; i < 3; i++) {
      last = await learnJob({
        mode: "learn",
        window: 2,
        predicate: p,
        log,
        jobId: `run:${i}.1`,
        policyFile: join(dir, "stable.yml"),
        store,
        warn: () => {},
      });
      expect(last?.stability.stable, `after job ${i}`).toBe(i === 2);
    }
    expect(last?.markdown).toContain("**The policy is stable.**");
    expect(last?.markdown).toContain(
      "      mode: enforce\n      policy: .github/dpndncy-policy.yml",
    );
    expect(readFileSync(join(dir, "stable.yml"), "utf8")).toMatch(/from 3 jobs \(stable\)/);
  });

  it("outside learn mode with no baseline, nothing happens; with one, anomalies but no policy", async () => {
    const log = writeJobLog(dir, "observe.ndjson", THREE_JOBS[1] ?? []);
    const p = await summarizeFile(log);
    const base = {
      mode: "observe" as const,
      window: 5,
      predicate: p,
      log,
      jobId: "run:1.1",
      policyFile: join(dir, "never.yml"),
      warn: () => {},
    };
    expect(
      await learnJob({ ...base, store: { load: async () => null, save: async () => true } }),
    ).toBeNull();
    const first = await learnJob({
      ...base,
      mode: "learn",
      jobId: "run:0.1",
      predicate: await summarizeFile(writeJobLog(dir, "first.ndjson", THREE_JOBS[0] ?? [])),
      store: { load: async () => null, save: async () => true },
    });
    let stored = "";
    const r = await learnJob({
      ...base,
      store: {
        load: async () => JSON.stringify(first?.baseline),
        save: async (t) => {
          stored = t;
          return true;
        },
      },
    });
    expect(r?.policy).toBeUndefined();
    expect(r?.anomalies.map((a) => a.key)).toEqual(
      expect.arrayContaining(["b.pkg.example.net", "10.1.0.2"]),
    );
    expect(parseBaseline(stored).total_jobs).toBe(2);
  });
});
