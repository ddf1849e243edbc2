// The background agent: start (armed on return) -> status -> stop (drain, stop record,
// teardown), and the SIGKILL -> stop recovery path.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { agentCli, agentStart, alive, parseJson } from "../support/kernel/agent.js";
import { AGENT, onCleanup, tempDir } from "../support/kernel/env.js";
import { expectSealedLog, readLog } from "../support/kernel/log.js";
import { poll, run, runOk, spawnBackground } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";
import { bpffsHasDpndncy, leaksSettled, snapshot } from "../support/kernel/sysstate.js";

interface Status {
  running: boolean;
  [k: string]: unknown;
}

async function markerRun(marker: string): Promise<void> {
  const r = await run(["/bin/sh", "-c", `/bin/true ${marker}; /bin/true ${marker}-2`]);
  expect(r.code).toBe(0);
}

function hasMarker(path: string, marker: string): boolean {
  try {
    return readLog(path).events.some(
      (e) => e.kind === "exec" && Array.isArray(e.argv) && (e.argv as string[]).includes(marker),
    );
  } catch {
    return false;
  }
}

describeKernel("start / status / stop", () => {
  it("start returns once armed; status reports it; stop drains, seals the log and removes everything", async () => {
    const before = await snapshot();
    const st0 = await agentCli(["status", "--state-dir", "/nonexistent-dpndncy-state"]);
    expect(parseJson<Status>(st0.stdout, "status").running).toBe(false);

    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    expect(s.pid, `pid in start's output: ${s.res.stdout}`).toBeDefined();
    const pid = s.pid as number;
    expect(alive(pid)).toBe(true);
    expect(s.res.stdout).toMatch(/openat|sched_process_exec/); // the chosen attach points

    // armed on return: a process started right now is in the log
    const marker = `armed-${process.pid}-${Date.now()}`;
    await markerRun(marker);
    expect(await poll(() => hasMarker(s.logPath, marker), 10_000)).toBe(true);

    const st = await agentCli(["status", "--state-dir", s.stateDir]);
    expect(st.code, st.stderr).toBe(0);
    const status = parseJson<Status>(st.stdout, "status");
    expect(status.running).toBe(true);
    expect(status.pid).toBe(pid);
    const since = Date.parse(String(status.since));
    expect(since).toBeGreaterThan(Date.now() - 120_000);
    expect(since).toBeLessThanOrEqual(Date.now());
    // counters: refreshed by the agent while it runs; the marker's two execs are in them
    const counted = await poll(async () => {
      const c = parseJson<{ counters?: { events?: Record<string, number> } }>(
        (await agentCli(["status", "--state-dir", s.stateDir])).stdout,
        "status",
      );
      return (c.counters?.events?.exec ?? 0) >= 2;
    }, 5000);
    expect(counted, "status counters.events.exec counts the marker's execs").toBe(true);

    const stop = await agentCli(["stop", "--state-dir", s.stateDir]);
    expect(stop.code, stop.stderr).toBe(0);
    const stats = parseJson<Record<string, unknown>>(stop.stdout, "stop output");
    expect(await poll(() => !alive(pid), 5000)).toBe(true);

    const log = readLog(s.logPath);
    const last = expectSealedLog(log, true);
    expect(stats).toMatchObject({ complete: true, log_sha256: last.log_sha256 });
    expect(
      Object.values(last.lost ?? {}).every((n) => n === 0),
      JSON.stringify(last.lost),
    ).toBe(true);
    expect(last.events?.exec ?? 0).toBeGreaterThanOrEqual(2);

    const st2 = await agentCli(["status", "--state-dir", s.stateDir]);
    expect(parseJson<Status>(st2.stdout, "status after stop").running).toBe(false);
    expect(bpffsHasDpndncy()).toBe(false);
    expect(await leaksSettled(before)).toEqual([]);
  });

  it("SIGKILL, then stop: cleans up pins and mounts, and says the trace is incomplete", async () => {
    const before = await snapshot();
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    const pid = s.pid as number;
    const marker = `before-kill-${process.pid}-${Date.now()}`;
    await markerRun(marker);
    expect(await poll(() => hasMarker(s.logPath, marker), 10_000)).toBe(true);

    process.kill(pid, "SIGKILL");
    expect(await poll(() => !alive(pid), 5000)).toBe(true);
    const st = await agentCli(["status", "--state-dir", s.stateDir]);
    expect(parseJson<Status>(st.stdout, "status of a killed agent").running).toBe(false);

    const stop = await agentCli(["stop", "--state-dir", s.stateDir]);
    console.log(`stop after SIGKILL: exit ${stop.code}; ${stop.stderr.trim()}`);
    const stats = parseJson<Record<string, unknown>>(stop.stdout, "stop output");
    expect(stats.complete).toBe(false);
    expect(`${stop.stdout}${stop.stderr}`).toMatch(/incomplete/i);

    const log = readLog(s.logPath);
    const last = expectSealedLog(log, false);
    expect(typeof last.reason === "string" && last.reason.length > 0).toBe(true);
    expect(hasMarker(s.logPath, marker)).toBe(true); // what was written before the kill survives
    expect(bpffsHasDpndncy()).toBe(false);
    expect(await leaksSettled(before)).toEqual([]);

    // a second stop has nothing to do and says so without damaging the log
    const again = await agentCli(["stop", "--state-dir", s.stateDir]);
    expect(again.code).not.toBe(0);
    expect(again.stderr.trim().split("\n")).toHaveLength(1);
    expect(readFileSync(s.logPath).equals(log.bytes)).toBe(true);
  });

  it("a second start while one runs: non-zero, one-line error, nothing more attached, the first keeps running", async () => {
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    const mid = await snapshot();
    const second = await agentCli(["start", "--log", `${s.logPath}.2`, "--state-dir", s.stateDir]);
    expect(second.code).not.toBe(0);
    const err = second.stderr.trim();
    expect(err.split("\n")).toHaveLength(1);
    expect(err).toMatch(/already running|running/i);
    expect(await leaksSettled(mid)).toEqual([]);
    const now = await snapshot();
    // nothing new loaded at all (the first agent's programs are unchanged)
    expect([...now.progs.keys()].filter((id) => !mid.progs.has(id))).toEqual([]);
    expect(alive(s.pid as number)).toBe(true);
    const marker = `still-${process.pid}-${Date.now()}`;
    await markerRun(marker);
    expect(await poll(() => hasMarker(s.logPath, marker), 10_000)).toBe(true);
    const stop = await agentCli(["stop", "--state-dir", s.stateDir]);
    expect(stop.code, stop.stderr).toBe(0);
    expectSealedLog(readLog(s.logPath), true);
  });

  it("SIGTERM stops the background agent cleanly with a complete log", async () => {
    const before = await snapshot();
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    const pid = s.pid as number;
    process.kill(pid, "SIGTERM");
    expect(await poll(() => !alive(pid), 10_000)).toBe(true);
    expectSealedLog(readLog(s.logPath), true);
    // nothing for stop to do but report; everything is already gone
    await agentCli(["stop", "--state-dir", s.stateDir]);
    expect(await leaksSettled(before)).toEqual([]);
  });

  it("SIGINT to `run` stops it cleanly with a complete log", async () => {
    const d = tempDir("sigint");
    const logPath = join(d, "events.ndjson");
    const before = await snapshot();
    const bg = spawnBackground([AGENT, "run", "--log", logPath, "--", "/bin/sleep", "30"]);
    onCleanup(() => bg.stop());
    const sleepPid = await poll(() => sleepPidIn(logPath), 15_000);
    expect(sleepPid, "exec of /bin/sleep in the log").toBeDefined();
    onCleanup(() => {
      // the workload is ours to end if the agent left it running
      if (sleepPid !== undefined && alive(sleepPid)) process.kill(sleepPid, "SIGKILL");
    });
    process.kill(bg.pid, "SIGINT");
    const exited = await poll(
      () => bg.child.exitCode !== null || bg.child.signalCode !== null,
      10_000,
    );
    expect(exited, "agent still running 10 s after SIGINT").toBe(true);
    expectSealedLog(readLog(logPath), true);
    expect(await leaksSettled(before)).toEqual([]);
  });

  it("disk full while logging: keeps running, counts and reports the loss, never a torn line", async () => {
    const d = tempDir("full");
    const mnt = join(d, "tiny");
    mkdirSync(mnt);
    await runOk(["mount", "-t", "tmpfs", "-o", "size=64k", "dpndncy-kt-full", mnt]);
    onCleanup(async () => {
      await run(["umount", "-l", mnt]);
    });
    const st = await agentStart([], join(mnt, "events.ndjson"));
    expect(st.res.code, st.res.stderr).toBe(0);
    const pid = st.pid as number;
    // ~1,000 exec + exit events: far more than 64 KiB of log
    const w = await run([
      "/bin/sh",
      "-c",
      "i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i+1)); done",
    ]);
    expect(w.code).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    expect(alive(pid), "agent died on a full disk").toBe(true);
    const status = parseJson<Status>(
      (await agentCli(["status", "--state-dir", st.stateDir])).stdout,
      "status",
    );
    expect(status.running).toBe(true);
    const stop = await agentCli(["stop", "--state-dir", st.stateDir]);
    const stats = parseJson<{ lost?: Record<string, number> }>(stop.stdout, "stop output");
    const lost = Object.values(stats.lost ?? {}).reduce((a, b) => a + b, 0);
    expect(lost, `loss reported by stop: ${stop.stdout}`).toBeGreaterThan(0);
    // what did reach the file is whole lines of valid events
    const log = readLog(join(mnt, "events.ndjson"));
    expect(log.errors.filter((e) => !/seq \d+, expected/.test(e))).toEqual([]);
    expect(log.events.length).toBeGreaterThan(0);
  });
});

function sleepPidIn(path: string): number | undefined {
  try {
    return readLog(path).events.find((e) => e.kind === "exec" && e.filename === "/bin/sleep")?.pid;
  } catch {
    return undefined;
  }
}
