import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { anomalies, describeProcess, withAncestry } from "../../src/learn/anomalies.js";
import {
  type Baseline,
  BaselineError,
  emptyBaseline,
  loadBaselineText,
  mergeBaseline,
  parseBaseline,
  serializeBaseline,
  stability,
} from "../../src/learn/baseline.js";
import { summarizeFile } from "../../src/trace/summarize.js";
import type { Predicate } from "../../src/trace/types.js";
import { type Hit, THREE_JOBS, writeJobLog } from "../support/learn/logs.js";

const dir = mkdtempSync(join(tmpdir(), "dpndncy-learn-baseline-"));
let n = 0;
async function job(hits: Hit[]): Promise<{ log: string; p: Predicate }> {
  const log = writeJobLog(dir, `job${++n}.ndjson`, hits);
  return { log, p: await summarizeFile(log) };
}

describe("mergeBaseline", () => {
  it("counts in how many of the last N jobs each destination appeared, with first/last seen", async () => {
    let b = emptyBaseline(2);
    for (const [i, hits] of THREE_JOBS.entries()) {
      b = mergeBaseline(b, (await job(hits)).p, `j${i}`, 2).baseline;
    }
    expect(b.total_jobs).toBe(3);
    expect(b.jobs.map((j) => j.id)).toEqual(["j1", "j2"]); // the ring keeps the last 2
    const npm = b.destinations.find((d) => d.key === "registry.npmjs.org");
    expect(npm).toMatchObject({
      kind: "name",
      ports: [443],
      proto: ["tcp"],
      jobs: 3,
      recent: ["j1", "j2"],
      first_seen: { job: "j0" },
      last_seen: { job: "j2" },
      steps: ["install"],
    });
    const ip = b.destinations.find((d) => d.key === "192.0.2.7");
    expect(ip).toMatchObject({ kind: "ip", jobs: 2, recent: ["j1"], last_seen: { job: "j1" } });
    expect(b.destinations.find((d) => d.key === "api.example.org")?.ports).toEqual([8080, 8443]);
    expect(b.jobs[0]?.new).toEqual(
      expect.arrayContaining(["b.pkg.example.net", "api.example.org:8443", "10.1.0.2"]),
    );
    // keys are sorted, so the serialized baseline is deterministic
    const keys = b.destinations.map((d) => d.key);
    expect(keys).toEqual([...keys].sort());
  });

  it("does not modify its input and ignores a job id already in the ring", async () => {
    const { p } = await job(THREE_JOBS[0] ?? []);
    const b0 = emptyBaseline(5);
    const snapshot = serializeBaseline(b0);
    const once = mergeBaseline(b0, p, "same", 5);
    expect(serializeBaseline(b0)).toBe(snapshot);
    const twice = mergeBaseline(once.baseline, p, "same", 5);
    expect(twice.merged).toBe(false);
    expect(twice.baseline).toEqual(once.baseline);
  });
});

describe("stability", () => {
  it("is stable once N jobs in a row added nothing, and a new destination resets it", async () => {
    const N = 3;
    const { p: first } = await job(THREE_JOBS[0] ?? []);
    let b = mergeBaseline(emptyBaseline(N), first, "j0", N).baseline;
    expect(stability(b, N)).toMatchObject({ stable: false, quiet: 0 });
    for (let i = 1; i <= N; i++) {
      b = mergeBaseline(b, first, `j${i}`, N).baseline;
      expect(stability(b, N).stable, `after ${i} quiet jobs`).toBe(i >= N);
    }
    expect(stability(b, N).reason).toBe(
      "stable: the last 3 jobs added nothing new (4 jobs learned)",
    );
    const { p: more } = await job([{ name: "new.example.org", addr: "198.51.100.99", port: 443 }]);
    b = mergeBaseline(b, more, "j9", N).baseline;
    expect(stability(b, N)).toMatchObject({ stable: false, quiet: 0 });
    expect(stability(b, N).reason).toMatch(/^not stable yet: 0 of the last 3/);
  });
});

describe("anomalies", () => {
  it("flags a destination never seen before, with its steps and the connecting process's ancestry", async () => {
    let b = emptyBaseline(5);
    const first = await job(THREE_JOBS[0] ?? []);
    expect(anomalies(b, first.p), "nothing to compare with on the first job").toEqual([]);
    b = mergeBaseline(b, first.p, "j0", 5).baseline;
    const next = await job([
      ...(THREE_JOBS[0] ?? []),
      {
        name: "exfil.example.com",
        addr: "203.0.113.50",
        port: 443,
        step: "test",
        comm: "curl",
        ancestry: [
          { pid: 1500, comm: "sh" },
          { pid: 1400, comm: "node" },
          { pid: 1000, comm: "Runner.Worker" },
        ],
      },
      { name: "api.example.org", addr: "198.51.100.20", port: 22, step: "deploy", comm: "ssh" },
    ]);
    const found = await withAncestry(next.log, anomalies(b, next.p));
    expect(found).toEqual([
      expect.objectContaining({
        key: "api.example.org",
        why: "new port",
        port: 22,
        steps: ["deploy"],
      }),
      expect.objectContaining({
        key: "exfil.example.com",
        why: "new destination",
        addr: "203.0.113.50",
        port: 443,
        steps: ["test"],
        process: { pid: expect.any(Number), comm: "curl" },
        ancestry: [
          { pid: 1500, comm: "sh" },
          { pid: 1400, comm: "node" },
          { pid: 1000, comm: "Runner.Worker" },
        ],
      }),
    ]);
    const exfil = found[1];
    if (!exfil) throw new Error("no anomaly");
    expect(describeProcess(exfil)).toMatch(
      /^curl \(\d+\) ← sh \(1500\) ← node \(1400\) ← Runner.Worker \(1000\)$/,
    );
  });
});

describe("an untrusted baseline", () => {
  const good = (): Baseline => mergeBaseline(emptyBaseline(5), emptyPredicate(), "j", 5).baseline;
  const cases: [string, string, RegExp][] = [
    ["not JSON", '{"format": ', /not JSON/],
    ["another file", JSON.stringify({ hello: 1 }), /not a dpndncy-learn-baseline file/],
    ["a future version", JSON.stringify({ ...good(), version: 2 }), /unknown version 2/],
    [
      "a forged entry",
      JSON.stringify({
        ...good(),
        destinations: [
          {
            key: "evil.example/../x",
            kind: "name",
            ports: [],
            proto: [],
            jobs: 1,
            recent: [],
            first_seen: { job: "j", at: null },
            last_seen: { job: "j", at: null },
            steps: [],
          },
        ],
      }),
      /destinations\[0\]: "evil.example\/..\/x" is not a host name/,
    ],
    ["a bad count", JSON.stringify({ ...good(), total_jobs: -1 }), /total_jobs/],
  ];
  for (const [what, text, why] of cases) {
    it(`${what}: reported and rebuilt from scratch, never trusted`, () => {
      expect(() => parseBaseline(text)).toThrow(BaselineError);
      expect(() => parseBaseline(text)).toThrow(why);
      const loaded = loadBaselineText(text, 5);
      expect(loaded.baseline).toEqual(emptyBaseline(5));
      expect(loaded.problem).toMatch(
        /corrupt or of an unknown version .* not trusted and is rebuilt/,
      );
    });
  }
  it("a valid one round-trips", () => {
    const b = good();
    expect(parseBaseline(serializeBaseline(b))).toEqual(b);
    expect(loadBaselineText(null, 5)).toEqual({ baseline: emptyBaseline(5) });
  });
});

function emptyPredicate(): Predicate {
  return {
    egress: [],
    agent: { started: null, stopped: null },
  } as unknown as Predicate;
}
