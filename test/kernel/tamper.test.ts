// Tamper evidence: each act a root step could take to blind the agent is done for real while
// the agent runs (`run`, or between `start` and `stop`); the log records it as a `tamper` event,
// the summarizer's integrity section reports it, and `dpndncy verify --require-complete` fails
// with a named code. With no tampering the same path verifies.
//
// SAFETY: nothing here denies network (the foreign program allows everything, and lives only as
// long as its helper process); /etc/hosts is opened for append without a byte written, and its
// content is compared and restored in cleanup; the clock is moved 3 s forward and put back to
// where it would have been 1.5 s later (DPNDNCY_TEST_NO_CLOCK=1 skips that one, loudly).
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { agentCli, agentRun, agentStart, alive, parseJson } from "../support/kernel/agent.js";
import { compileC } from "../support/kernel/cbuild.js";
import { cgroup2Mount } from "../support/kernel/cgroup.js";
import { FIXTURES, onCleanup, REPO, tempDir } from "../support/kernel/env.js";
import { type Ev, readLog } from "../support/kernel/log.js";
import { poll, run, sleep, spawnBackground } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";

interface Tamper {
  what: string;
  detail: string;
  pid: number;
}

function tampers(events: Ev[]): Tamper[] {
  return events.filter((e) => e.kind === "tamper") as unknown as Tamper[];
}

function logTampers(path: string): Tamper[] {
  try {
    return tampers(readLog(path).events);
  } catch {
    return [];
  }
}

const cli = (args: string[]) =>
  run([process.execPath, join(REPO, "dist/cli.js"), ...args], {
    env: { PATH: process.env.PATH },
    timeoutMs: 60_000,
  });

interface Verdict {
  code: number | null;
  json: { ok: boolean; code?: string; message?: string };
  integrity: { complete: boolean | null; untampered: boolean; problems: string[] };
}

/** Sign the log with a fresh key, then verify it with --require-complete. */
async function attestAndVerify(logPath: string): Promise<Verdict> {
  const a = await cli(["attest", logPath, "--generate-key"]);
  expect(a.code, a.stdout + a.stderr).toBe(0);
  const bundle = `${logPath}.sigstore.json`;
  const args = ["verify", bundle, "--log", logPath, "--key", `${logPath}.pub.pem`];
  const v = await cli([...args, "--require-complete", "--json"]);
  // the predicate as signed (--allow-incomplete reports integrity without failing on it)
  const plain = await cli([...args, "--allow-incomplete", "--json"]);
  expect(plain.code, plain.stdout + plain.stderr).toBe(0);
  const p = parseJson<{ predicate: { integrity: Verdict["integrity"] } }>(plain.stdout, "verify");
  return {
    code: v.code,
    json: parseJson(v.stdout, "verify --require-complete"),
    integrity: p.predicate.integrity,
  };
}

async function expectTampered(logPath: string, what: string): Promise<Verdict> {
  const v = await attestAndVerify(logPath);
  expect(v.code, JSON.stringify(v.json)).toBe(1);
  expect(v.json.code).toBe("TRACE_TAMPERED");
  expect(v.json.message).toContain(what);
  expect(v.integrity.untampered).toBe(false);
  expect(v.integrity.problems).toContain("TAMPER_EVENTS");
  return v;
}

async function stopAgent(stateDir: string): Promise<void> {
  const r = await agentCli(["stop", "--state-dir", stateDir]);
  expect(r.code, r.stderr).toBe(0);
}

describeKernel("tamper evidence", () => {
  it("no tampering: no tamper events, log_intact, and verify --require-complete passes", async () => {
    const r = await agentRun({ cmd: ["/bin/sh", "-c", "cat /etc/hosts >/dev/null; sleep 1.2"] });
    expect(r.res.code, r.res.stderr).toBe(0);
    expect(tampers(r.log.events)).toEqual([]);
    const stop = r.log.events.at(-1) as Ev & { log_intact?: boolean };
    expect(stop.log_intact).toBe(true);
    const v = await attestAndVerify(r.logPath);
    expect(v.code, JSON.stringify(v.json)).toBe(0);
    expect(v.json.ok).toBe(true);
    expect(v.integrity).toMatchObject({ complete: true, untampered: true, problems: [] });
  });

  it("/proc/<agent>/mem and /proc/<agent>/environ opened by a step", async () => {
    const r = await agentRun({
      cmd: [
        "/bin/sh",
        "-c",
        "head -c1 /proc/$PPID/environ >/dev/null; head -c1 /proc/$PPID/mem >/dev/null 2>&1; sleep 1.2",
      ],
      validate: false,
    });
    const t = tampers(r.log.events);
    expect(t.map((e) => e.what).sort()).toEqual(["proc-environ-access", "proc-mem-access"]);
    expect(t[0]?.detail).toContain(`/proc/${r.agentPid}/`);
    await expectTampered(r.logPath, "proc-mem-access");
  });

  it("protect-pid: /proc/<pid>/mem and ptrace of a protected process (the runner worker)", async () => {
    const dir = tempDir("protect");
    const victim = spawnBackground(["/bin/sleep", "60"]);
    onCleanup(() => victim.stop());
    const other = spawnBackground(["/bin/sleep", "60"]);
    onCleanup(() => other.stop());
    const conf = join(dir, "agent.conf");
    writeFileSync(conf, `protect-pid ${victim.pid}\n`);
    const tracer = await compileC(join(FIXTURES, "tamper_ptrace.c"));
    const r = await agentRun({
      args: ["--config", conf],
      cmd: [
        "/bin/sh",
        "-c",
        // the unprotected process is read too: that is a proc-mem file event, not tamper
        `head -c1 /proc/${other.pid}/mem >/dev/null 2>&1; head -c1 /proc/${victim.pid}/mem >/dev/null 2>&1; ${tracer} ${victim.pid}; sleep 1.5`,
      ],
      validate: false,
    });
    expect(r.res.code, r.res.stderr).toBe(0);
    const t = tampers(r.log.events);
    expect(t.filter((e) => e.what === "proc-mem-access").map((e) => e.detail)).toEqual([
      expect.stringContaining(`/proc/${victim.pid}/mem`),
    ]);
    const pt = t.filter((e) => e.what === "ptrace");
    expect(pt.length).toBeGreaterThanOrEqual(1);
    // PTRACE_ATTACH (16) on the victim; the tracer's PTRACE_DETACH (17) may be reported too,
    // in any order (the agent drains a hash map of hits once a second)
    expect(pt.map((e) => e.detail)).toContainEqual(
      expect.stringMatching(
        new RegExp(`ptrace\\(request 16\\) on protected process \\(pid ${victim.pid}\\)`),
      ),
    );
    // the other process's read is an ordinary proc-mem file event
    expect(r.log.events.some((e) => e.kind === "file" && e.path === `/proc/${other.pid}/mem`)).toBe(
      true,
    );
    await expectTampered(r.logPath, "ptrace");
  });

  it("ptrace-attach of the background agent by a root step", async () => {
    const tracer = await compileC(join(FIXTURES, "tamper_ptrace.c"));
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    const pid = s.pid as number;
    const t = await run([tracer, String(pid)]);
    expect(t.code, t.stderr).toBe(0);
    expect(await poll(() => logTampers(s.logPath).some((e) => e.what === "ptrace"), 5_000)).toBe(
      true,
    );
    await stopAgent(s.stateDir);
    const ev = logTampers(s.logPath).find((e) => e.what === "ptrace");
    expect(ev?.detail).toContain(`on the agent (pid ${pid})`);
    await expectTampered(s.logPath, "ptrace");
  });

  it("ptrace-attach of the background agent through the 32-bit syscall entry (int 0x80)", async () => {
    const tracer = await compileC(join(FIXTURES, "tamper_ptrace32.c"));
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    const pid = s.pid as number;
    const t = await run([tracer, String(pid)]);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toContain("attached and detached");
    expect(await poll(() => logTampers(s.logPath).some((e) => e.what === "ptrace"), 5_000)).toBe(
      true,
    );
    await stopAgent(s.stateDir);
    const ev = logTampers(s.logPath).find((e) => e.what === "ptrace");
    expect(ev?.detail).toContain(`on the agent (pid ${pid})`);
    await expectTampered(s.logPath, "ptrace");
  });

  it("/etc/hosts opened for writing during the job (reads are not reported)", async () => {
    const before = readFileSync("/etc/hosts");
    onCleanup(() => {
      if (!readFileSync("/etc/hosts").equals(before)) writeFileSync("/etc/hosts", before);
    });
    // O_WRONLY|O_APPEND|O_CREAT with nothing written: the file is unchanged
    const r = await agentRun({
      cmd: ["/bin/sh", "-c", "cat /etc/hosts >/dev/null; : >> /etc/hosts; sleep 1.2"],
      validate: false,
    });
    expect(readFileSync("/etc/hosts").equals(before)).toBe(true);
    const t = tampers(r.log.events);
    expect(t.map((e) => e.what)).toEqual(["hosts-write"]);
    expect(t[0]?.detail).toContain("/etc/hosts");
    const files = r.log.events.filter((e) => e.kind === "file" && e.path === "/etc/hosts");
    expect(files).toHaveLength(1); // the write; cat's read was dropped in the kernel
    await expectTampered(r.logPath, "hosts-write");
  });

  it("a pin unlinked and a cgroup link detached (bpftool) under the agent's pin dir", async () => {
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    const pid = s.pid as number;
    const pinDir = `/sys/fs/bpf/dpndncy/${pid}`;
    unlinkSync(join(pinDir, "exec"));
    // detaching our observe-only connect4 program: nothing is denied by it at any time
    const show = await run(["bpftool", "-j", "link", "show", "pinned", join(pinDir, "connect4")]);
    expect(show.code, show.stderr).toBe(0);
    const id = parseJson<{ id: number }>(show.stdout, "bpftool link show").id;
    const d = await run(["bpftool", "link", "detach", "id", String(id)]);
    expect(d.code, d.stderr).toBe(0);
    expect(
      await poll(() => {
        const w = logTampers(s.logPath).map((e) => e.what);
        return w.includes("pin-removed") && w.includes("link-detached");
      }, 5_000),
    ).toBe(true);
    await stopAgent(s.stateDir);
    const w = logTampers(s.logPath).map((e) => e.what);
    expect(w).toEqual(expect.arrayContaining(["pin-removed", "link-detached", "program-detached"]));
    await expectTampered(s.logPath, "link-detached");
  });

  it("a foreign (allow-all) program attached to the root cgroup's connect4 hook", async () => {
    const loader = await compileC(join(FIXTURES, "tamper_foreign.c"));
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    // the link lives as long as the helper (and dies with this process: PR_SET_PDEATHSIG)
    const f = spawnBackground([loader, cgroup2Mount()]);
    onCleanup(() => f.stop());
    await f.waitForLine(/^attached/);
    const seen = await poll(
      () => logTampers(s.logPath).some((e) => e.what === "foreign-bpf-program"),
      5_000,
    );
    await f.stop(); // detached before anything else happens
    expect(seen, f.stderr()).toBe(true);
    await stopAgent(s.stateDir);
    const ev = logTampers(s.logPath).find((e) => e.what === "foreign-bpf-program");
    expect(ev?.detail).toMatch(/name 'foreign_allow'.*connect4 hook of the cgroup v2 root/);
    await expectTampered(s.logPath, "foreign-bpf-program");
  });

  if (process.env.DPNDNCY_TEST_NO_CLOCK === "1") {
    console.warn(
      "SKIPPED tamper clock-jump test (DPNDNCY_TEST_NO_CLOCK=1): the wall clock is not moved",
    );
  }
  it.skipIf(process.env.DPNDNCY_TEST_NO_CLOCK === "1")(
    "the wall clock jumping 3 s forward and back (restored at once)",
    async () => {
      const jumper = await compileC(join(FIXTURES, "tamper_clock.c"));
      const s = await agentStart();
      expect(s.res.code, s.res.stderr).toBe(0);
      await sleep(1_100);
      const j = await run([jumper, "3", "1500"]);
      expect(j.code, j.stderr).toBe(0);
      expect(
        await poll(
          () => logTampers(s.logPath).filter((e) => e.what === "clock-jump").length >= 2,
          5_000,
        ),
      ).toBe(true);
      await stopAgent(s.stateDir);
      const jumps = logTampers(s.logPath).filter((e) => e.what === "clock-jump");
      expect(jumps[0]?.detail).toMatch(/moved \+3\.\d+ s/);
      expect(jumps[1]?.detail).toMatch(/moved -3\.\d+ s/);
      await expectTampered(s.logPath, "clock-jump");
    },
  );

  it("the agent stopped with SIGSTOP: status says so, stop continues it, the stall is recorded", async () => {
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    const pid = s.pid as number;
    process.kill(pid, "SIGSTOP");
    onCleanup(() => {
      if (alive(pid)) process.kill(pid, "SIGCONT");
    });
    const st = parseJson<{ stopped?: boolean }>(
      (await agentCli(["status", "--state-dir", s.stateDir])).stdout,
      "status",
    );
    expect(st.stopped).toBe(true);
    await sleep(6_000);
    const r = await agentCli(["stop", "--state-dir", s.stateDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/was stopped \(SIGSTOP\?\)/);
    const ev = logTampers(s.logPath).find((e) => e.what === "agent-stalled");
    expect(ev?.detail).toMatch(/did not run for [6-9]\.\d s/);
    await expectTampered(s.logPath, "agent-stalled");
  });

  it("the log truncated while the agent runs", async () => {
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    await run(["/bin/true"]);
    await sleep(1_200);
    writeFileSync(s.logPath, ""); // O_TRUNC
    await sleep(1_500);
    await stopAgent(s.stateDir);
    const text = readFileSync(s.logPath, "latin1");
    expect(text).toContain('"what":"log-modified"');
    expect(text).toMatch(/"log_intact":false/);
    const v = await attestAndVerify(s.logPath);
    expect(v.code).toBe(1);
    expect(v.json.code).toBe("TRACE_TAMPERED");
    expect(v.integrity.untampered).toBe(false);
    expect(v.integrity.problems).toEqual(expect.arrayContaining(["LOG_MODIFIED"]));
  });

  it("the log edited in place (same size) while the agent runs", async () => {
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    await sleep(1_200);
    const b = readFileSync(s.logPath);
    const at = b.indexOf('"observe"');
    expect(at).toBeGreaterThan(0);
    b.write('"OBSERVE"', at, "latin1");
    writeFileSync(s.logPath, b.subarray(0, b.length), { flag: "r+" });
    await sleep(1_200);
    await stopAgent(s.stateDir);
    const log = readLog(s.logPath);
    const t = tampers(log.events);
    expect(t.map((e) => e.what)).toEqual(["log-modified"]);
    expect(t[0]?.detail).toMatch(/at stop the log .* is not what the agent wrote/);
    expect((log.events.at(-1) as Ev & { log_intact?: boolean }).log_intact).toBe(false);
    const v = await attestAndVerify(s.logPath);
    expect(v.json.code).toBe("TRACE_TAMPERED");
    expect(v.integrity.problems).toEqual(
      expect.arrayContaining(["LOG_MODIFIED", "LOG_SHA256_MISMATCH", "TAMPER_EVENTS"]),
    );
  });

  it("the agent killed (SIGKILL): verify --require-complete fails with TRACE_INCOMPLETE", async () => {
    const s = await agentStart();
    expect(s.res.code, s.res.stderr).toBe(0);
    await sleep(500);
    process.kill(s.pid as number, "SIGKILL");
    await poll(() => !alive(s.pid as number), 5_000);
    const r = await agentCli(["stop", "--state-dir", s.stateDir]);
    expect(r.code).toBe(3);
    const v = await attestAndVerify(s.logPath);
    expect(v.code).toBe(1);
    expect(v.json.code).toBe("TRACE_INCOMPLETE");
    expect(v.integrity.complete).toBe(false);
  });
});
