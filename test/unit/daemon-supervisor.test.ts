// The supervisor against a stand-in agent (test/support/daemon-agent-stand-in.mjs) that prints
// control lines: what it is started with, routing, signals, crashes, reloads, signing, and a
// webhook receiver that is down while the control stream keeps flowing.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateSigningKey } from "../../src/attest/sign.js";
import { sha256File } from "../../src/attest/verify.js";
import { parseDaemonConfig } from "../../src/daemon/config.js";
import {
  Daemon,
  type DaemonEvent,
  type DaemonOptions,
  StartError,
} from "../../src/daemon/supervisor.js";
import { SAMPLES } from "../support/daemon-samples.js";
import { receiver, verifies } from "../support/webhook-receiver.js";

const STAND_IN = join(import.meta.dirname, "../support/daemon-agent-stand-in.mjs");
const FIXTURE = join(import.meta.dirname, "../fixtures/attack.ndjson");

let dir: string;
const servers: Server[] = [];
const running: Daemon[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dpndncy-daemon-sup-"));
});
afterEach(async () => {
  for (const d of running.splice(0)) {
    d.stop("SIGKILL");
    await d.exited;
  }
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  rmSync(dir, { recursive: true, force: true });
});

type Step = Record<string, unknown>;
interface Scenario {
  steps?: Step[];
  onTerm?: Step[];
  onHup?: Step[];
}
interface Record_ {
  argv: string[];
  config: string | null;
  signals: string[];
  pid: number;
}

interface Harness {
  d: Daemon;
  out: string[];
  err: string[];
  events: { at: number; e: DaemonEvent }[];
  record: () => Record_;
}

async function start(
  yml: string,
  scenario: Scenario,
  extra: Partial<DaemonOptions> = {},
): Promise<Harness> {
  const config = parseDaemonConfig(`jobsDir: jobs\n${yml}`, join(dir, "daemon.yml"));
  const recordFile = join(dir, "record.json");
  const scenarioFile = join(dir, "scenario.json");
  writeFileSync(scenarioFile, JSON.stringify({ record: recordFile, ...scenario }));
  const out: string[] = [];
  const err: string[] = [];
  const events: Harness["events"] = [];
  const d = await Daemon.start({
    config,
    agentCommand: [process.execPath, STAND_IN, scenarioFile],
    io: { out: (s) => out.push(s), err: (s) => err.push(s) },
    onEvent: (e) => events.push({ at: Date.now(), e }),
    drainMs: 10_000,
    stopTimeoutMs: 5_000,
    watchDebounceMs: 100,
    ...extra,
  });
  running.push(d);
  return {
    d,
    out,
    err,
    events,
    record: () => JSON.parse(readFileSync(recordFile, "utf8")) as Record_,
  };
}

async function until(cond: () => boolean, ms = 10_000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sawLine = (h: Harness, type: string, job?: string) =>
  h.events.find(
    ({ e }) =>
      e.kind === "line" &&
      e.line.type === type &&
      (job === undefined || ("job" in e.line && e.line.job === job)),
  );

async function stopped(h: Harness): Promise<number> {
  const code = await h.d.exited;
  running.splice(running.indexOf(h.d), 1);
  return code;
}

function metric(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("supervisor", () => {
  it("starts the agent with its argv and config, routes the stream, forwards SIGTERM, exits 0", async () => {
    const h = await start("metrics: {listen: '127.0.0.1:0'}\njobIdleSeconds: 4\n", {
      steps: [
        { print: SAMPLES["daemon-start"] },
        { print: SAMPLES["job-start"] },
        { print: "this is not JSON" },
        { print: { type: "stats" } },
        { print: SAMPLES.deny },
        {
          print: {
            ...SAMPLES.stats,
            events: { exec: 12, connect: 5 },
            verdicts: { allow: 4, deny: 1 },
            lost: 2,
          },
        },
        {
          print: {
            ...SAMPLES.stats,
            events: { exec: 20, connect: 5 },
            verdicts: { allow: 6, deny: 1 },
            lost: 2,
            unattributed: 11,
          },
        },
        { print: SAMPLES.error },
      ],
    });
    await until(() => sawLine(h, "error") !== undefined, 10_000, "the error line");
    const r = h.record();
    const jobs = join(dir, "jobs");
    const state = join(jobs, ".dpndncy-daemon");
    expect(r.argv).toEqual([
      "daemon",
      "--jobs-dir",
      jobs,
      "--config",
      join(state, "agent.conf"),
      "--state-dir",
      join(state, "agent"),
      "--mode",
      "observe",
      "--job-idle",
      "4",
    ]);
    expect(r.config).toBe(readFileSync(join(state, "agent.conf"), "utf8"));
    expect(r.config).toMatch(/^mode observe$/m);
    expect(r.config).toMatch(/^job-marker CI_JOB_ID gitlab$/m);

    // stdout: the metrics address, then job-start and deny lines as the agent wrote them
    const first = JSON.parse(h.out[0] ?? "");
    expect(first.metrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const printed = h.out.slice(1).map((l) => JSON.parse(l).type);
    expect(printed).toEqual(["job-start", "deny"]);

    // two bad lines: counted, said, and the stream went on
    const errText = h.err.join("");
    expect(errText.match(/INVALID CONTROL LINE/g)).toHaveLength(2);
    expect(errText).toContain("not JSON");
    expect(errText).toContain("AGENT ERROR: cannot open a job log");
    expect(errText).toMatch(/WARNING: NO SIGNING CONFIGURED/);

    const text = await (await fetch(first.metrics)).text();
    expect(metric(text, "dpndncy_control_lines_invalid_total")).toBe(2);
    expect(metric(text, 'dpndncy_events_total{kind="exec"}')).toBe(20);
    expect(metric(text, 'dpndncy_events_total{kind="connect"}')).toBe(5);
    expect(metric(text, 'dpndncy_verdicts_total{verdict="allow"}')).toBe(6);
    expect(metric(text, 'dpndncy_verdicts_total{verdict="deny"}')).toBe(1);
    expect(metric(text, "dpndncy_lost_events_total")).toBe(2);
    expect(metric(text, "dpndncy_unattributed_events_total")).toBe(11);
    expect(metric(text, "dpndncy_agent_errors_total")).toBe(1);

    h.d.stop("SIGTERM");
    expect(await stopped(h)).toBe(0);
    expect(h.record().signals).toEqual(["SIGTERM"]);
    expect(sawLine(h, "daemon-stop")).toBeDefined();
    // the metrics server is closed with the daemon
    await expect(fetch(first.metrics)).rejects.toThrow();
  });

  it("SIGINT is forwarded as SIGINT", async () => {
    const h = await start("", { steps: [{ print: SAMPLES["daemon-start"] }] });
    await until(() => sawLine(h, "daemon-start") !== undefined);
    h.d.stop("SIGINT");
    expect(await stopped(h)).toBe(0);
    expect(h.record().signals).toEqual(["SIGINT"]);
  });

  it("an agent that dies on its own: said loudly, exit 1", async () => {
    const h = await start("", {
      steps: [{ print: SAMPLES["daemon-start"] }, { sleep: 50 }, { exit: 3 }],
    });
    expect(await stopped(h)).toBe(1);
    expect(h.err.join("")).toMatch(
      /THE AGENT DIED UNEXPECTEDLY \(exit status 3\); jobs are NOT being watched/,
    );
    const k = await start("", { steps: [{ sleep: 50 }, { kill: "SIGKILL" }] });
    expect(await stopped(k)).toBe(1);
    expect(k.err.join("")).toMatch(/THE AGENT DIED UNEXPECTEDLY \(signal SIGKILL\)/);
  });

  it("a process the agent left holding its stdout does not keep the supervisor waiting", async () => {
    const h = await start("", {
      steps: [{ print: SAMPLES["daemon-start"] }, { leaveBehind: 30 }, { exit: 3 }],
    });
    const t0 = Date.now();
    try {
      expect(await stopped(h)).toBe(1);
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      const pid = (h.record() as Record_ & { leftBehind?: number }).leftBehind;
      if (pid) process.kill(pid, "SIGKILL");
    }
  });

  it("an agent that stops on its own with daemon-stop is still unexpected: exit 1", async () => {
    const h = await start("", {
      steps: [{ print: SAMPLES["daemon-stop"] }, { exit: 0 }],
    });
    expect(await stopped(h)).toBe(1);
    expect(h.err.join("")).toMatch(
      /THE AGENT DIED UNEXPECTEDLY \(exit status 0, after daemon-stop\)/,
    );
  });

  it("an agent that ignores SIGTERM is killed after the stop timeout: exit 1", async () => {
    const h = await start(
      "",
      { steps: [{ print: SAMPLES["daemon-start"] }], onTerm: [] },
      { stopTimeoutMs: 300 },
    );
    await until(() => sawLine(h, "daemon-start") !== undefined);
    const t0 = Date.now();
    h.d.stop("SIGTERM");
    expect(await stopped(h)).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(h.err.join("")).toMatch(/AGENT DID NOT STOP within 300 ms: SIGKILL/);
    expect(h.err.join("")).toMatch(/did not stop cleanly \(signal SIGKILL, no daemon-stop\)/);
  });

  it("an agent that cannot be executed: exit 5", async () => {
    const config = parseDaemonConfig("jobsDir: jobs\n", join(dir, "daemon.yml"));
    const err: string[] = [];
    const d = await Daemon.start({
      config,
      agentCommand: [join(dir, "no-such-agent")],
      io: { out: () => undefined, err: (s) => err.push(s) },
    });
    expect(await d.exited).toBe(5);
    expect(err.join("")).toMatch(/CANNOT START THE AGENT: spawn .*no-such-agent ENOENT/);
  });

  it("signs each job log at job-end, and the ones closed at shutdown before exiting", async () => {
    const { privateKeyPem } = generateSigningKey();
    writeFileSync(join(dir, "key.pem"), privateKeyPem);
    mkdirSync(join(dir, "jobs"));
    const logA = join(dir, "jobs", "CI_JOB_ID_1-1.ndjson");
    const logB = join(dir, "jobs", "CI_JOB_ID_2-2.ndjson");
    copyFileSync(FIXTURE, logA);
    copyFileSync(FIXTURE, logB);
    const sha = await sha256File(FIXTURE);
    const end = (job: string, log: string, reason: string) => ({
      print: { ...SAMPLES["job-end"], job, log, reason, log_sha256: sha },
    });
    const hostLog = join(dir, "jobs", "daemon-1.ndjson");
    const h = await start("signing: {key: key.pem}\n", {
      steps: [
        { print: { ...SAMPLES["daemon-start"], log: hostLog } },
        { print: { ...SAMPLES["job-start"], job: "CI_JOB_ID=1", log: logA } },
        { print: { ...SAMPLES["job-start"], job: "CI_JOB_ID=2", log: "CI_JOB_ID_2-2.ndjson" } },
        end("CI_JOB_ID=1", logA, "idle"),
      ],
      onTerm: [
        end("CI_JOB_ID=2", "CI_JOB_ID_2-2.ndjson", "daemon-stop"), // relative to jobsDir
        { print: { ...SAMPLES["daemon-stop"], jobs_closed: 1 } },
        { copy: [FIXTURE, hostLog] }, // the agent closes its own log last
        { exit: 0 },
      ],
    });
    await until(() => h.events.some(({ e }) => e.kind === "signed"), 30_000, "the first bundle");
    expect(JSON.parse(readFileSync(`${logA}.sigstore.json`, "utf8")).mediaType).toMatch(
      /bundle\.v0\.3/,
    );
    h.d.stop("SIGTERM");
    expect(await stopped(h)).toBe(0);
    // exited only after the job closed at shutdown was signed
    expect(JSON.parse(readFileSync(`${logB}.sigstore.json`, "utf8")).mediaType).toMatch(
      /bundle\.v0\.3/,
    );
    const signed = h.out.map((l) => JSON.parse(l)).filter((l) => l.type === "signed");
    expect(signed.map((l) => [l.job, l.bundle])).toEqual([
      ["CI_JOB_ID=1", `${logA}.sigstore.json`],
      ["CI_JOB_ID=2", `${logB}.sigstore.json`],
      ["daemon", `${hostLog}.sigstore.json`],
    ]);
    expect(h.err.join("")).toMatch(/signing each job log: key .*key\.pem/);
  });

  it("a webhook receiver that is down does not hold up the stream; the deny arrives later, once", async () => {
    const probe = await receiver(() => undefined);
    const port = Number(new URL(probe.url).port);
    await new Promise((r) => probe.server.close(r)); // closed port: connection refused
    writeFileSync(join(dir, "secret"), "hook-secret\n");
    const h = await start(
      `webhook: {url: '${probe.url}', secretFile: secret, maxAttempts: 50, timeoutMs: 1000}\n`,
      {
        steps: [
          { print: SAMPLES["job-start"] },
          { print: SAMPLES.deny },
          { sleep: 200 },
          { print: { ...SAMPLES["job-end"], log: join(dir, "none.ndjson") } },
        ],
      },
      { webhookBackoffMs: 50, webhookMaxBackoffMs: 300 },
    );
    await until(() => sawLine(h, "job-end") !== undefined, 10_000, "job-end");
    const jobEndAt = sawLine(h, "job-end")?.at ?? 0;
    await until(
      () => (h.err.join("").match(/ECONNREFUSED/g) ?? []).length >= 2,
      10_000,
      "refused retries",
    );
    // now the receiver comes up: 503 twice, then 200
    const r = await receiver((n, _, res) => res.writeHead(n <= 2 ? 503 : 200).end(), port);
    servers.push(r.server);
    await until(() => r.got.length === 3, 15_000, "three deliveries");
    const delivered = r.got[2]?.at ?? 0;
    expect(jobEndAt).toBeLessThan(delivered);
    expect(new Set(r.got.map((g) => g.headers["x-dpndncy-delivery"])).size).toBe(1);
    for (const g of r.got) expect(verifies(g, "hook-secret")).toBe(true);
    expect(JSON.parse(r.got[2]?.body.toString() ?? "").record).toEqual(SAMPLES.deny.record);
    h.d.stop("SIGTERM");
    expect(await stopped(h)).toBe(0);
    expect(r.got).toHaveLength(3);
    expect(h.err.join("")).toMatch(/HTTP 503; retry/);
  });

  it("reloads policies on request and on change; a broken directory keeps the tree and the agent is not told", async () => {
    const pol = join(dir, "policies");
    mkdirSync(join(pol, "acme"), { recursive: true });
    writeFileSync(join(pol, "default.yml"), "version: 1\negress:\n  allow: [github.com]\n");
    const h = await start("policyDir: policies\nmode: enforce\ncgroup: /sys/fs/cgroup/ci.slice\n", {
      steps: [{ print: SAMPLES["daemon-start"] }],
    });
    await until(() => sawLine(h, "daemon-start") !== undefined);
    const compiled = join(dir, "jobs", ".dpndncy-daemon", "policies");
    expect(h.record().argv).toEqual(
      expect.arrayContaining(["--policy-dir", compiled, "--cgroup", "/sys/fs/cgroup/ci.slice"]),
    );
    const conf = () =>
      readFileSync(join(compiled, "default.conf"), "utf8")
        .split("\n")
        .filter((l) => l && !l.startsWith("#"));
    expect(conf()).toEqual(["allow-host github.com"]);
    const hups = () => h.record().signals.filter((s) => s === "SIGHUP").length;

    writeFileSync(join(pol, "acme", "default.yml"), "version: 1\negress:\n  allow: [npmjs.org]\n");
    await until(() => hups() >= 1, 10_000, "SIGHUP after a change");
    await until(() => sawLine(h, "policy-reload") !== undefined, 10_000, "policy-reload");
    expect(readFileSync(join(compiled, "acme", "default.conf"), "utf8")).toContain(
      "allow-host npmjs.org",
    );

    writeFileSync(
      join(pol, "default.yml"),
      "version: 1\negress:\n  allow: [gitlab.com]\n  deny: [x]\n",
    );
    const before = hups(); // one per reload the change caused (the watcher may see it twice)
    expect(await h.d.reload()).toBe(false);
    await new Promise((r) => setTimeout(r, 400)); // the watcher's reload of the same change, too
    expect(hups()).toBe(before);
    expect(conf()).toEqual(["allow-host github.com"]);
    expect(h.err.join("")).toContain(
      `POLICY RELOAD REFUSED (SIGHUP): ${join(pol, "default.yml")}:4:3: unknown key "deny" in egress (allowed: allow, allow-metadata); the policies in force stay`,
    );

    writeFileSync(join(pol, "default.yml"), "version: 1\negress:\n  allow: [gitlab.com]\n");
    expect(await h.d.reload()).toBe(true);
    await until(() => hups() > before, 10_000, "SIGHUP after the fix");
    expect(conf()).toEqual(["allow-host gitlab.com"]);
    const reloads = await h.d.metrics.policyReloads.get();
    const byResult = Object.fromEntries(reloads.values.map((v) => [v.labels.result, v.value]));
    expect(byResult.invalid).toBeGreaterThanOrEqual(1);
    expect(byResult.ok).toBeGreaterThanOrEqual(1);
    h.d.stop("SIGTERM");
    expect(await stopped(h)).toBe(0);
  });

  it("start-up refusals: a missing webhook secret, a broken policy with nothing compiled before", async () => {
    await expect(
      start("webhook: {url: 'http://127.0.0.1:9/', secretFile: nope}\n", {}),
    ).rejects.toThrow(
      new StartError(`webhook.secretFile ${join(dir, "nope")}: cannot read: ENOENT`),
    );
    mkdirSync(join(dir, "policies"));
    writeFileSync(join(dir, "policies", "default.yml"), "version: 2\n");
    await expect(start("policyDir: policies\n", {})).rejects.toThrow(
      new StartError(
        `${join(dir, "policies", "default.yml")}:1:10: version must be 1, not 2 (this dpndncy reads policy version 1)`,
      ),
    );
  });

  it("a broken policy at start with a tree compiled before: starts with that tree, loudly", async () => {
    mkdirSync(join(dir, "policies"));
    writeFileSync(
      join(dir, "policies", "default.yml"),
      "version: 1\negress:\n  allow: [github.com]\n",
    );
    const a = await start("policyDir: policies\n", { steps: [{ print: SAMPLES["daemon-start"] }] });
    await until(() => sawLine(a, "daemon-start") !== undefined);
    a.d.stop("SIGTERM");
    expect(await stopped(a)).toBe(0);
    writeFileSync(join(dir, "policies", "default.yml"), "version: 1\negress:\n  allow: ['a b']\n");
    const b = await start("policyDir: policies\n", { steps: [{ print: SAMPLES["daemon-start"] }] });
    expect(b.err.join("")).toMatch(/POLICY ERROR: .*default\.yml:3:11: invalid endpoint "a b"/);
    expect(b.err.join("")).toMatch(/starting with the policies compiled before/);
    await until(() => sawLine(b, "daemon-start") !== undefined);
    expect(
      readFileSync(join(dir, "jobs", ".dpndncy-daemon", "policies", "default.conf"), "utf8"),
    ).toContain("allow-host github.com");
    b.d.stop("SIGTERM");
    expect(await stopped(b)).toBe(0);
  });
});
