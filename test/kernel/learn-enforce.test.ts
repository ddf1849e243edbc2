// Learn mode against the real kernel: three jobs of one workload run under the agent in
// observe mode in a namespace lab (documentation addresses only, no route out), the logs are
// learned into a policy exactly as `dpndncy learn` does, and that policy, turned into agent
// directives and applied with `run --mode enforce`, lets the same workload pass and blocks
// what is new (another name, another address, another port of a pinned name).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { renderAgentConfig } from "../../src/agent/config.js";
import { anomalies } from "../../src/learn/anomalies.js";
import { type Baseline, emptyBaseline, mergeBaseline } from "../../src/learn/baseline.js";
import { derive, renderPolicyYaml } from "../../src/learn/derive.js";
import { parsePolicy } from "../../src/policy/load.js";
import { summarizeFile } from "../../src/trace/summarize.js";
import { type AgentRun, agentRun, expectRunOk } from "../support/kernel/agent.js";
import { results } from "../support/kernel/enforce-client.js";
import { FIXTURES, PYTHON, tempDir } from "../support/kernel/env.js";
import { Netns } from "../support/kernel/netns.js";
import { startDns, startServers, type Zone } from "../support/kernel/servers.js";
import { describeKernel } from "../support/kernel/suite.js";

const RESOLVER = "192.0.2.53";
const zone: Zone = {
  "a.pkg.learn.test": { A: ["192.0.2.1"] },
  "b.pkg.learn.test": { A: ["192.0.2.10"] },
  "c.pkg.learn.test": { A: ["192.0.2.11"] },
  "d.pkg.learn.test": { A: ["192.0.2.12"] }, // never seen while learning: covered by the wildcard
  "api.svc.test": { A: ["192.0.2.30"] },
  "new.other.test": { A: ["198.51.100.66"] },
};

async function lab(): Promise<Netns> {
  const inet = await Netns.create();
  const work = await Netns.create();
  await work.vethTo(
    inet,
    ["192.0.2.2/24", "198.51.100.2/24"],
    [
      "192.0.2.1/24",
      "192.0.2.10/24",
      "192.0.2.11/24",
      "192.0.2.12/24",
      "192.0.2.20/24",
      "192.0.2.30/24",
      `${RESOLVER}/24`,
      "198.51.100.1/24",
      "198.51.100.66/24",
    ],
  );
  work.setResolvConf(`nameserver ${RESOLVER}\noptions timeout:2 attempts:1\n`);
  await startDns(inet, [RESOLVER], zone);
  await startServers(inet, ["tcp:[::]:80", "tcp:[::]:443", "tcp:[::]:9999"]);
  return work;
}

/**
 * The log lines of the agent and the workload only. `run` also records the rest of the machine
 * (here: the lab's DNS stand-in answering the workload), which a CI job's log does not have.
 */
function workloadLog(r: AgentRun): string {
  const pids = new Set(r.workload.map((e) => e.pid));
  const keep = readFileSync(r.logPath, "utf8")
    .split("\n")
    .filter((l) => {
      if (l === "") return false;
      const e = JSON.parse(l) as { kind: string; pid: number };
      return e.kind === "agent" || pids.has(e.pid);
    });
  const f = `${r.logPath}.workload.ndjson`;
  writeFileSync(f, `${keep.join("\n")}\n`);
  return f;
}

const JOBS = [
  ["tcp:a.pkg.learn.test:80", "tcp:api.svc.test:80", "tcp:192.0.2.20:9999"],
  ["tcp:b.pkg.learn.test:80", "tcp:api.svc.test:443", "tcp:192.0.2.20:9999"],
  ["tcp:c.pkg.learn.test:80", "tcp:api.svc.test:80", "tcp:192.0.2.20:9999"],
];
const EPERM = 1;

describeKernel("learn -> enforce", () => {
  it("the learned policy lets the same workload pass in enforce mode and blocks a new destination", async () => {
    const work = await lab();
    const client = (ops: string[]) =>
      work.exec(
        "/bin/sh",
        "-c",
        `${PYTHON} ${join(FIXTURES, "enforce_client.py")} ${ops.join(" ")}`,
      );

    let baseline: Baseline = emptyBaseline(5);
    for (const [i, ops] of JOBS.entries()) {
      const r = await agentRun({ cmd: client(ops), args: ["--mode", "observe"] });
      expectRunOk(r);
      expect(Object.values(results(r.res.stdout)), `job ${i}: ${r.res.stdout}`).toEqual([0, 0, 0]);
      const p = await summarizeFile(workloadLog(r));
      baseline = mergeBaseline(baseline, p, `job${i}`, 5).baseline;
    }
    const d = derive(baseline);
    expect(d.policy.egress?.allow).toEqual(["*.learn.test:80", "api.svc.test", "192.0.2.20:9999"]);
    // the lab's resolver reached on port 53 is not an egress entry
    expect(d.excluded.map((x) => x.key)).toEqual([RESOLVER]);
    const yaml = renderPolicyYaml(d.policy, {
      jobs: 3,
      excluded: d.excluded,
      wildcards: d.wildcards,
    });
    const loaded = parsePolicy(yaml, "learned.yml");

    // the lab's resolver is the runner's /etc/resolv.conf on a real runner; the agent (outside
    // the namespace) is told explicitly here
    const conf = join(tempDir("learn"), "agent.conf");
    writeFileSync(
      conf,
      renderAgentConfig({ mode: "enforce", allow: loaded.allow, dnsResolvers: [RESOLVER] }),
    );
    const same = JOBS.flat();
    const fresh = [
      "tcp:d.pkg.learn.test:80", // a new name under the wildcard: allowed
      "tcp:new.other.test:80", // a new name: blocked
      "tcp:198.51.100.1:80", // a new address: blocked
      "tcp:a.pkg.learn.test:443", // a learned name on a port it never used: blocked
      "tcp:192.0.2.20:80", // the IP-only entry on another port: blocked
    ];
    const r = await agentRun({
      cmd: client([...same, ...fresh]),
      args: ["--mode", "enforce", "--config", conf],
    });
    expectRunOk(r);
    const res = results(r.res.stdout);
    const expected: Record<string, number> = {
      ...Object.fromEntries(same.map((op) => [op, 0])),
      "tcp:d.pkg.learn.test:80": 0,
      "tcp:new.other.test:80": EPERM,
      "tcp:198.51.100.1:80": EPERM,
      "tcp:a.pkg.learn.test:443": EPERM,
      "tcp:192.0.2.20:80": EPERM,
    };
    expect(res, `workload output:\n${r.res.stdout}\n${r.res.stderr}`).toEqual(expected);

    // and the baseline flags the new destinations of the enforced job, blocked ones included
    const p = await summarizeFile(workloadLog(r));
    const flagged = anomalies(baseline, p).map((a) => `${a.key}:${a.port} ${a.why}`);
    expect(flagged).toEqual(
      expect.arrayContaining([
        "new.other.test:80 new destination",
        "198.51.100.1:80 new destination",
        "a.pkg.learn.test:443 new port",
        "d.pkg.learn.test:80 new destination",
      ]),
    );
  });
});
