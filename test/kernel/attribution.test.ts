// Step attribution on the real kernel: a runner stand-in per CI platform (like the real runner,
// a parent with no step of its own that starts step processes with that platform's marker in
// their environment); every event of every step must carry that step, including processes that
// live for well under a millisecond, children that clear (`env -i`) or rewrite (marker=other)
// their environment, and a daemon that outlives its step. See fixtures/step_runner.c.

import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { renderAgentConfig } from "../../src/agent/config.js";
import { detectPlatform, type Env } from "../../src/platform/detect.js";
import { agentRun, expectRunOk } from "../support/kernel/agent.js";
import { compileC } from "../support/kernel/cbuild.js";
import { FIXTURES, tempDir } from "../support/kernel/env.js";
import type { AgentEv, Ev, ExecEv } from "../support/kernel/log.js";
import { describeKernel } from "../support/kernel/suite.js";

interface Step {
  /** what the step's processes must carry; null: no step (never a wrong one) */
  expect: string | null;
  /** the variables the runner puts into this step's environment */
  vars: Record<string, string>;
}

interface Platform {
  name: string;
  /** the job-level environment: the runner and every step have it */
  job: Env;
  steps: Step[];
  concurrent?: boolean;
}

const PLATFORMS: Platform[] = [
  {
    name: "github",
    job: { GITHUB_ACTIONS: "true", GITHUB_REPOSITORY: "acme/app", GITHUB_RUN_ID: "7" },
    steps: [
      { expect: "install", vars: { GITHUB_ACTION: "install" } },
      { expect: "__run_2", vars: { GITHUB_ACTION: "__run_2" } },
    ],
  },
  {
    name: "gitlab",
    job: { GITLAB_CI: "true", CI_PROJECT_PATH: "acme/app", CI_PIPELINE_ID: "9" },
    steps: [
      { expect: "build", vars: { CI_JOB_NAME: "build", CI_JOB_ID: "1" } },
      { expect: "test: [unit]", vars: { CI_JOB_NAME: "test: [unit]", CI_JOB_ID: "2" } },
    ],
  },
  {
    name: "jenkins",
    job: { JENKINS_URL: "https://ci.example/", BUILD_ID: "5", JOB_NAME: "app" },
    steps: [
      { expect: "Build", vars: { STAGE_NAME: "Build" } },
      // a step outside any stage: attributed to the job (null), never to the previous stage
      { expect: null, vars: { WORKSPACE: "/tmp" } },
      { expect: "Test", vars: { STAGE_NAME: "Test" } },
    ],
  },
  {
    name: "buildkite",
    job: { BUILDKITE: "true", BUILDKITE_BUILD_ID: "b1" },
    steps: [
      // the key wins over the label; without a key the label names the step
      {
        expect: "install",
        vars: { BUILDKITE_STEP_KEY: "install", BUILDKITE_LABEL: ":npm: Install" },
      },
      { expect: 'Run tests 🚀 "quoted"', vars: { BUILDKITE_LABEL: 'Run tests 🚀 "quoted"' } },
    ],
  },
  {
    name: "drone",
    job: { DRONE: "true", DRONE_REPO: "acme/app" },
    steps: [
      { expect: "build", vars: { DRONE_STEP_NAME: "build" } },
      { expect: "publish", vars: { DRONE_STEP_NAME: "publish" } },
    ],
  },
  {
    name: "azure",
    job: { TF_BUILD: "True", BUILD_BUILDID: "11" },
    steps: [
      {
        expect: "Bash Script",
        vars: {
          SYSTEM_TASKDISPLAYNAME: "Bash Script",
          SYSTEM_TASKINSTANCEID: "a1b2c3d4-0000-4000-8000-000000000001",
        },
      },
      {
        expect: "a1b2c3d4-0000-4000-8000-000000000002",
        vars: { SYSTEM_TASKINSTANCEID: "a1b2c3d4-0000-4000-8000-000000000002" },
      },
    ],
  },
  {
    name: "bitbucket",
    job: { BITBUCKET_BUILD_NUMBER: "3", BITBUCKET_REPO_FULL_NAME: "acme/app" },
    steps: [
      {
        expect: "{3f1c2a9e-1111-4a6b-9c3e-000000000001}",
        vars: { BITBUCKET_STEP_UUID: "{3f1c2a9e-1111-4a6b-9c3e-000000000001}" },
      },
      {
        expect: "{3f1c2a9e-1111-4a6b-9c3e-000000000002}",
        vars: { BITBUCKET_STEP_UUID: "{3f1c2a9e-1111-4a6b-9c3e-000000000002}" },
      },
    ],
  },
  {
    // GitHub `services` / background steps: two steps running at the same time
    name: "github (two concurrent steps)",
    job: { GITHUB_ACTIONS: "true" },
    concurrent: true,
    steps: [
      { expect: "server", vars: { GITHUB_ACTION: "server" } },
      { expect: "client", vars: { GITHUB_ACTION: "client" } },
    ],
  },
];

let bin = "";
let server: Server;
let port = 0;

beforeAll(async () => {
  bin = await compileC(join(FIXTURES, "step_runner.c"));
  server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
});

/** Which step index an event belongs to, from what the stand-in put into it; -1: the runner. */
function stepIndexOf(e: Ev): number | undefined {
  if (e.kind === "exec") {
    const argv = (e as ExecEv).argv;
    const mode = argv.findIndex((a) => a === "step" || a === "quick" || a === "runner");
    if (argv[mode] === "runner") return -1;
    return mode >= 0 ? Number(argv[mode + 2]) : undefined;
  }
  if (e.comm === "runner") return -1;
  const m = /^st(\d+)-/.exec(e.comm);
  return m ? Number(m[1]) : undefined;
}

/** The child the stand-in exec'd with the marker rewritten to "other". */
function isOverrideChild(e: Ev): boolean {
  return e.kind === "exec" ? (e as ExecEv).argv.at(-1) === "ot" : e.comm.endsWith("-ot");
}

describeKernel("step attribution", () => {
  for (const p of PLATFORMS) {
    it(`${p.name}: every event of every step carries that step; the runner none`, async () => {
      const detection = detectPlatform(p.job);
      const markers = detection.step.markers;
      expect(markers.length).toBeGreaterThan(0);
      const dir = tempDir("attr");
      const homes = join(dir, "homes");
      p.steps.forEach((_, i) => {
        mkdirSync(join(homes, `h${i}`, ".aws"), { recursive: true });
        writeFileSync(join(homes, `h${i}`, ".aws", "credentials"), "[default]\n");
      });
      const conf = join(dir, "agent.conf");
      writeFileSync(
        conf,
        renderAgentConfig({
          mode: "observe",
          stepMarkers: markers,
          ci: { ...detection.identity, alsoMatched: detection.alsoMatched },
        }),
      );
      const specs = p.steps.map(
        (s, i) =>
          `${i}:${s.expect === null ? "-" : "x"}:${Object.entries(s.vars)
            .map(([k, v]) => `${k}=${v}`)
            .join(";")}`,
      );
      // the runner's environment: the job's variables, no step marker (as a real runner)
      const env = { PATH: "/usr/bin:/bin", ...p.job } as NodeJS.ProcessEnv;
      const r = await agentRun({
        cmd: [
          bin,
          "runner",
          String(port),
          homes,
          p.concurrent ? "conc" : "seq",
          markers[0] as string,
          ...specs,
        ],
        args: ["--config", conf],
        env,
      });
      expectRunOk(r);

      const start = r.log.events.find(
        (e): e is AgentEv => e.kind === "agent" && (e as AgentEv).event === "start",
      ) as AgentEv;
      expect(start.step_markers).toEqual(markers);
      expect(start.ci).toMatchObject({ platform: detection.identity.platform });

      // our processes: the runner's subtree by the log, plus the daemons (reparented away)
      const ours = r.log.events.filter(
        (e) => e.kind !== "agent" && (r.workload.includes(e) || /^st\d+-/.test(e.comm)),
      );
      const perStep = p.steps.map(() => ({
        exec: 0,
        exit: 0,
        connect: 0,
        file: 0,
        dns: 0,
        daemonConnect: 0,
      }));
      for (const e of ours) {
        const i = stepIndexOf(e);
        expect(i, `event not attributable by the test: ${JSON.stringify(e)}`).toBeDefined();
        let want = i === -1 ? null : (p.steps[i as number]?.expect ?? null);
        // Known limit (README "Step attribution"): a process that has no step cannot be told
        // from a runner starting one, so under a step-less step the child exec'd with
        // MARKER=other is named "other". Everything that has a step keeps it.
        if (want === null && i !== -1 && isOverrideChild(e)) want = "other";
        expect(e.step, `${e.kind} of ${e.comm} (pid ${e.pid})`).toBe(want);
        if (i !== undefined && i >= 0) {
          const c = perStep[i];
          if (c && e.kind in c) c[e.kind as "exec"]++;
          if (c && e.kind === "connect" && e.comm.endsWith("-dmn")) c.daemonConnect++;
        }
      }
      const dnsHooked = /uprobe/.test(JSON.stringify(start.attach ?? {}));
      perStep.forEach((c, i) => {
        // step + quick + env + env's quick + other = 5 execs; connects and reads: step, quick,
        // env -i, other, daemon; exits: 5 fork-only children, 3 quick, the step, the daemon
        // (and the daemon's parent)
        expect(c, `step ${i}`).toMatchObject({ exec: 5, connect: 5, file: 5, daemonConnect: 1 });
        expect(c.exit).toBeGreaterThanOrEqual(10);
        if (dnsHooked) expect(c.dns, `step ${i}: getaddrinfo`).toBeGreaterThanOrEqual(1);
      });

      // the env -i child really had an empty environment, the other one really said "other"
      const execs = ours.filter((e): e is ExecEv => e.kind === "exec");
      expect(execs.filter((e) => e.argv[0] === "env" && e.argv[1] === "-i")).toHaveLength(
        p.steps.length,
      );

      if (!p.concurrent && p.steps.length > 1) {
        // the daemon of step 0 acted while step 1 ran, and kept step 0
        const d0 = ours.find((e) => e.kind === "connect" && e.comm === "st0-dmn");
        const s1 = ours.find((e) => e.kind === "exec" && stepIndexOf(e) === 1);
        expect(d0 && s1 && d0.ts > s1.ts, "daemon of step 0 connected after step 1 began").toBe(
          true,
        );
        expect(d0?.step).toBe(p.steps[0]?.expect);
      }
      if (p.concurrent) {
        // both steps were alive at the same time
        const ends = p.steps.map((_, i) =>
          ours.find((e) => e.kind === "exit" && e.comm === `st${i}-step`),
        );
        const begins = p.steps.map((_, i) =>
          ours.find((e) => e.kind === "exec" && stepIndexOf(e) === i),
        );
        expect((begins[1]?.ts ?? "") < (ends[0]?.ts ?? "")).toBe(true);
        expect((begins[0]?.ts ?? "") < (ends[1]?.ts ?? "")).toBe(true);
      }
    });
  }

  it("no marker configured: DPNDNCY_STEP is the only marker; GITHUB_ACTION alone names nothing", async () => {
    const dir = tempDir("attr");
    const homes = join(dir, "homes");
    for (const i of [0, 1]) {
      mkdirSync(join(homes, `h${i}`, ".aws"), { recursive: true });
      writeFileSync(join(homes, `h${i}`, ".aws", "credentials"), "x\n");
    }
    const conf = join(dir, "agent.conf");
    writeFileSync(conf, "mode observe\n");
    const r = await agentRun({
      cmd: [
        bin,
        "runner",
        String(port),
        homes,
        "seq",
        "DPNDNCY_STEP",
        "0:x:DPNDNCY_STEP=by-hand",
        "1:-:GITHUB_ACTION=install",
      ],
      args: ["--config", conf],
      env: { PATH: "/usr/bin:/bin" },
    });
    expectRunOk(r);
    const start = r.log.events.find((e) => e.kind === "agent") as AgentEv;
    expect(start.step_markers).toEqual(["DPNDNCY_STEP"]);
    expect(start.ci).toBeUndefined();
    const ours = r.log.events.filter((e) => e.kind !== "agent" && /^st\d+-/.test(e.comm));
    expect(ours.length).toBeGreaterThan(20);
    for (const e of ours) {
      const want = e.comm.startsWith("st0-") ? "by-hand" : isOverrideChild(e) ? "other" : null;
      expect(e.step, `${e.kind} of ${e.comm}`).toBe(want);
    }
  });

  it("bad step-marker and ci-identity lines are refused with FILE:LINE", async () => {
    const dir = tempDir("attr");
    for (const [text, why] of [
      ["step-marker 9BAD\n", /agent\.conf:1: step-marker/],
      ['mode observe\nci-identity {"platform":"github",}\n', /agent\.conf:2: ci-identity/],
      ["ci-identity [1,2]\n", /agent\.conf:1: ci-identity/],
      ["step-marker A\nstep-marker A\n", /agent\.conf:2: step-marker A given twice/],
    ] as const) {
      const conf = join(dir, "agent.conf");
      writeFileSync(conf, text);
      const r = await agentRun({
        cmd: ["/bin/true"],
        args: ["--config", conf],
        validate: false,
      }).catch((e: Error) => ({ err: e.message }));
      expect(JSON.stringify(r)).toMatch(why);
    }
  });
});
