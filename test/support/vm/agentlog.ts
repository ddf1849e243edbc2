// An agent log that came back from the VM, read exactly like the host suite reads one
// (test/support/kernel/agent.ts): every line valid against the schema, sealed, nothing lost,
// and the workload's events picked by the pid/ppid chain rooted at CMD's exec.
import { expect } from "vitest";
import {
  type AgentEv,
  byKind,
  type Ev,
  type ExecEv,
  expectSealedLog,
  type Log,
  parseLog,
  subtree,
} from "../kernel/log.js";
import type { ScenarioResult } from "./vm.js";

export interface VmRun {
  scen: ScenarioResult;
  log: Log;
  start: AgentEv | undefined;
  agentPid: number | undefined;
  rootPid: number | undefined;
  workload: Ev[];
}

/** Parses `file` of the scenario (an agent log); fails with the scenario's output when absent. */
export function vmRun(s: ScenarioResult | undefined, file = "log.ndjson"): VmRun {
  if (s === undefined) throw new Error("scenario did not run in the VM (see the console)");
  const bytes = s.files[file];
  if (bytes === undefined) {
    throw new Error(
      `scenario ${s.name}: no ${file} came back (exit ${s.rc})\nstderr:\n${s.stderr}\nstdout:\n${s.stdout}`,
    );
  }
  const log = parseLog(bytes, `${s.name}/${file}`);
  const start = byKind.agent(log.events).find((e) => e.event === "start");
  const agentPid = start?.pid;
  const rootPid = log.events.find(
    (e): e is ExecEv => e.kind === "exec" && e.ppid === agentPid && e.pid !== agentPid,
  )?.pid;
  const pids = rootPid === undefined ? new Set<number>() : subtree(log.events, rootPid);
  const workload = log.events.filter((e) => e.kind !== "agent" && pids.has(e.pid));
  return { scen: s, log, start, agentPid, rootPid, workload };
}

/** The checks agentRun()+expectRunOk() make on the host. */
export function expectVmRunOk(r: VmRun): void {
  expect(r.scen.rc, `agent run in the VM failed:\n${r.scen.stderr}`).toBe(0);
  expect(r.log.errors, `log ${r.log.path} breaks the contract`).toEqual([]);
  const stop = expectSealedLog(r.log, true);
  expect(stop.lost, "events lost").toEqual(
    Object.fromEntries(Object.keys(stop.lost ?? {}).map((k) => [k, 0])),
  );
  expect(r.rootPid, "no exec event of CMD with the agent as parent").toBeDefined();
}
