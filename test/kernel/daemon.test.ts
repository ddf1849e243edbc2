// Daemon mode (docs/daemon.md): one `dpndncy-agent daemon` watches every job on the host.
// Jobs here are shells in cgroups this test creates, named by DPNDNCY_JOB in their
// environment; enforcement is attached to the test's parent cgroup only.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { compileC } from "../support/kernel/cbuild.js";
import { inCgroup, type TestCgroup, testCgroup } from "../support/kernel/cgroup.js";
import { type Ctl, type Daemon, startDaemon } from "../support/kernel/daemon.js";
import { AGENT, FIXTURES, onCleanup, PYTHON, tempDir } from "../support/kernel/env.js";
import {
  type ConnectEv,
  type Ev,
  expectSealedLog,
  type Log,
  readLog,
} from "../support/kernel/log.js";
import { Netns } from "../support/kernel/netns.js";
import { type Background, poll, run, runOk, spawnBackground } from "../support/kernel/proc.js";
import { startServers } from "../support/kernel/servers.js";
import { describeKernel } from "../support/kernel/suite.js";
import { unitSetpriv } from "../support/kernel/systemd-unit.js";

/** The workload's events of a job log: not the agent's start/stop records, not tamper records. */
function workload(log: Log): Ev[] {
  return log.events.filter((e) => e.kind !== "agent" && e.kind !== "tamper");
}

describeKernel("daemon", () => {
  it("two concurrent jobs in their own cgroups: two sealed logs, each with only its own events; processes without a job in neither", async () => {
    const d = await startDaemon([]);
    const cg = testCgroup("jobs");
    const home = { a: tempDir("home-a"), b: tempDir("home-b") };
    for (const h of Object.values(home)) {
      mkdirSync(join(h, ".aws"));
      writeFileSync(join(h, ".aws/credentials"), "[default]\naws_secret_access_key = fake\n");
    }
    const port = { a: 47101, b: 47102, none: 47103 };
    const nonce = `${process.pid}-${Date.now()}`;
    // job b runs in a "container" whose processes carry the job's marker (GitLab's executors): a
    // cgroup named as Podman's systemd scopes are. (A Docker-named one is the daemon's client's:
    // containers-runtime.test.ts, "daemon mode")
    const cid = createHash("sha256").update(nonce).digest("hex");
    const cgName = { a: "job-a", b: `libpod-${cid}.scope` };
    const job = (name: "a" | "b") => {
      const dir = cg.child(cgName[name]);
      // forks, an `env -i` child (cannot shed the job), a background process, a connect, a
      // credential read; job a also reads the agent's environment (tampering)
      const script = [
        name === "a" ? `head -c1 /proc/${d.bg.pid}/environ > /dev/null` : "true",
        "for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done",
        `env -i /bin/bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port[name]}' 2>/dev/null; true`,
        `bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port[name]}' 2>/dev/null; true`,
        `cat "$HOME/.aws/credentials" > /dev/null`,
        "(sleep 0.3; /bin/true) &",
        "wait",
      ].join("\n");
      // the runner puts the job into its cgroup first; the marker appears with the job's first exec
      const env = [
        `DPNDNCY_JOB=${name}-${nonce}`,
        "DPNDNCY_PROJECT=group/app",
        `DPNDNCY_JOB_NAME=job-${name}`,
      ];
      return spawnBackground(inCgroup(dir, env, ["/bin/bash", "-c", script]), {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home[name] },
      });
    };
    // a host process without a job, busy at the same time
    const stranger = spawnBackground([
      "/bin/bash",
      "-c",
      `for i in 1 2 3; do bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port.none}' 2>/dev/null; /bin/true; done`,
    ]);
    const ja = job("a");
    const jb = job("b");
    await Promise.all([ja, jb, stranger].map((p) => poll(() => p.child.exitCode !== null, 20_000)));
    const ends = await poll(() => {
      const e = d.lines().filter((c) => c.type === "job-end" && String(c.job).endsWith(nonce));
      return e.length === 2 ? e : undefined;
    }, 20_000);
    expect(ends, `job-end lines:\n${d.bg.stdout()}`).toBeDefined();

    const starts = d.lines().filter((c) => c.type === "job-start" && String(c.job).endsWith(nonce));
    expect(starts.map((s) => s.job).sort()).toEqual([
      `DPNDNCY_JOB=a-${nonce}`,
      `DPNDNCY_JOB=b-${nonce}`,
    ]);
    for (const name of ["a", "b"] as const) {
      const key = `DPNDNCY_JOB=${name}-${nonce}`;
      const start = starts.find((s) => s.job === key);
      const end = ends?.find((e) => e.job === key);
      expect(start).toMatchObject({
        project: "group/app",
        name: `job-${name}`,
        container: name === "b" ? { runtime: "podman", id: cid, pod: null } : null,
      });
      expect(String(start?.cgroup)).toBe(join(cg.path, cgName[name]));
      expect(end).toMatchObject({ reason: "idle", complete: true, lost: 0, log: start?.log });
      const log = readLog(String(start?.log));
      expect(log.errors, `${log.path} breaks the contract`).toEqual([]);
      expect(statSync(log.path).mode & 0o777, "a job's log is its owner's only").toBe(0o600);
      const stop = expectSealedLog(log, true);
      expect(end?.log_sha256).toBe(stop.log_sha256);
      const startRec = log.events[0] as Ev & { job?: unknown; ci?: unknown };
      expect(startRec.job).toEqual({
        key,
        project: "group/app",
        name: `job-${name}`,
        policy: null,
      });
      expect(startRec.ci).toMatchObject({
        repository: "group/app",
        jobName: `job-${name}`,
        jobId: key,
      });

      const evs = workload(log);
      // the job's processes (exec'd, or forked by one that was) and nothing else
      const mine = new Set(evs.filter((e) => e.kind === "exec").map((e) => e.pid));
      const strays = evs.filter((e) => !mine.has(e.pid) && !mine.has(e.ppid));
      expect(strays, "events of processes that are not the job's").toEqual([]);
      expect(
        evs.filter((e) => e.kind === "exec" && (e as { filename: string }).filename === "/bin/true")
          .length,
      ).toBe(11);
      // every record of the containerised job names the container; none of the other job's does
      const containers = new Set(
        evs.map((e) => JSON.stringify((e as { container?: unknown }).container ?? null)),
      );
      expect([...containers]).toEqual([
        JSON.stringify(name === "b" ? { runtime: "podman", id: cid, pod: null } : null),
      ]);
      const conns = evs.filter((e): e is ConnectEv => e.kind === "connect");
      // the env -i child kept the job: both connects are here, and only to this job's port
      expect(conns.map((c) => c.port).sort()).toEqual([port[name], port[name]]);
      const files = evs.filter((e) => e.kind === "file").map((e) => (e as { path: string }).path);
      const agentEnv = name === "a" ? [`/proc/${d.bg.pid}/environ`] : [];
      expect(files.sort()).toEqual([...agentEnv, join(home[name], ".aws/credentials")].sort());
      // tampering with the agent is in the log of every job running then (b's may have ended)
      const tampers = log.events.filter((e) => e.kind === "tamper") as (Ev & { what: string })[];
      if (name === "a") expect(tampers.map((t) => t.what)).toEqual(["proc-environ-access"]);
      // the other job's and the stranger's ports never show up
      const other = name === "a" ? port.b : port.a;
      expect(
        log.lines.some((l) => l.includes(`"port":${other}`) || l.includes(`"port":${port.none}`)),
      ).toBe(false);
    }
    // only the two job logs and the daemon's own log
    const files = readdirSync(d.jobsDir).sort();
    expect(files.filter((f) => f.includes(nonce))).toHaveLength(2);
    expect(files.filter((f) => f.startsWith("daemon-"))).toHaveLength(1);
    await d.bg.stop();
    const stop = d.lines().find((c) => c.type === "daemon-stop");
    expect(stop).toMatchObject({ jobs_closed: 0 });
  });

  it("a job with 40,000 short-lived processes: every exit is in its log, nothing lost; the process table is rebuilt and the next job is routed as before", async () => {
    const d = await startDaemon([]);
    const forkMany = await compileC(join(FIXTURES, "fork_many.c"));
    const nonce = `${process.pid}-${Date.now()}`;
    const N = 40_000;
    const many = spawnBackground([forkMany, String(N)], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", DPNDNCY_JOB: `many-${nonce}` },
    });
    await poll(() => many.child.exitCode !== null, 120_000);
    expect(many.child.exitCode).toBe(0);
    const end = await d.waitFor(
      (c) => c.type === "job-end" && c.job === `DPNDNCY_JOB=many-${nonce}`,
      "job-end",
      30_000,
    );
    expect(end).toMatchObject({ complete: true, lost: 0 });
    const log = readLog(String(end.log));
    expect(log.errors).toEqual([]);
    expect(workload(log).filter((e) => e.kind === "exit").length).toBe(N + 1); // the children and fork_many
    // the deleted slots of 40,000 processes pass an eighth of the table: rebuilt at a sweep
    const rebuilt = await poll(() => {
      const st = d
        .lines()
        .filter((c) => c.type === "stats")
        .at(-1) as Ctl & { process_table_rebuilds?: number };
      return (st?.process_table_rebuilds ?? 0) >= 1;
    }, 5000);
    expect(rebuilt, "process_table_rebuilds in the stats line").toBe(true);
    // and the table still works: a new job's processes are tracked and it ends on time
    const after = spawnBackground(["/bin/sh", "-c", "/bin/true; /bin/true"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", DPNDNCY_JOB: `after-${nonce}` },
    });
    await poll(() => after.child.exitCode !== null, 10_000);
    const end2 = await d.waitFor(
      (c) => c.type === "job-end" && c.job === `DPNDNCY_JOB=after-${nonce}`,
      "job-end",
    );
    expect(end2).toMatchObject({ reason: "idle", complete: true, events: { exec: 3, exit: 3 } });
  });

  it("enforce: each job is judged by its own policy; a reload changes one job's verdicts and not the other's; a broken reload changes nothing", async () => {
    const inet = await Netns.create();
    const work = await Netns.create();
    await work.vethTo(inet, ["192.0.2.2/24"], ["192.0.2.10/24", "192.0.2.11/24"]);
    await startServers(inet, ["tcp:[::]:80"]);
    const cg = testCgroup("enforce");
    const pol = tempDir("policies");
    mkdirSync(join(pol, "proj"));
    writeFileSync(
      join(pol, "default.conf"),
      "# nothing: jobs without their own policy reach nothing\n",
    );
    writeFileSync(join(pol, "proj/a.conf"), "allow-cidr 192.0.2.10/32\n");
    writeFileSync(join(pol, "proj/b.conf"), "allow-cidr 192.0.2.10/32\n");
    const conf = join(tempDir("conf"), "daemon.conf");
    writeFileSync(conf, "dns-resolver 192.0.2.53\n");
    const d = await startDaemon([
      "--mode",
      "enforce",
      "--cgroup",
      cg.path,
      "--policy-dir",
      pol,
      "--config",
      conf,
    ]);
    expect(d.lines()[0]).toMatchObject({ mode: "enforce", cgroup: cg.path, policies: 3 });

    const phase = tempDir("phase");
    writeFileSync(join(phase, "n"), "1");
    const nonce = `${process.pid}-${Date.now()}`;
    const job = (name: "a" | "b" | "c") => {
      const dir = cg.child(`job-${name}`);
      const loop = [
        `while [ ! -e '${phase}/stop' ]; do`,
        `  echo "ROUND $(cat '${phase}/n')"`,
        `  ${PYTHON} ${join(FIXTURES, "enforce_client.py")} tcp:192.0.2.10:80 tcp:192.0.2.11:80`,
        "  sleep 0.2",
        "done",
      ].join("\n");
      const env = [
        `DPNDNCY_JOB=${name}-${nonce}`,
        "DPNDNCY_PROJECT=proj",
        `DPNDNCY_JOB_NAME=${name}`,
      ];
      return spawnBackground(inCgroup(dir, env, work.exec("/bin/sh", "-c", loop)), {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      });
    };
    const jobs = { a: job("a"), b: job("b"), c: job("c") };
    onCleanup(() => writeFileSync(join(phase, "stop"), ""));
    /** "RES op errno" lines of the rounds run in phase n */
    const verdicts = (bg: Background, n: number) => {
      const out: Record<string, number[]> = {};
      let cur = 0;
      for (const l of bg.stdout().split("\n")) {
        const r = /^ROUND (\d+)$/.exec(l);
        if (r) cur = Number(r[1]);
        const m = /^RES (\S+) (-?\d+)$/.exec(l);
        if (m?.[1] && cur === n) out[m[1]] = [...(out[m[1]] ?? []), Number(m[2])];
      }
      return out;
    };
    const rounds = async (n: number) => {
      for (const bg of Object.values(jobs)) {
        const ok = await poll(
          () => (verdicts(bg, n)["tcp:192.0.2.11:80"]?.length ?? 0) >= 2,
          20_000,
        );
        expect(ok, `two rounds in phase ${n}:\n${bg.stdout()}\n${bg.stderr()}`).toBe(true);
      }
    };
    const EPERM = 1;
    const expectAll = (bg: Background, n: number, want: Record<string, number>) => {
      const v = verdicts(bg, n);
      for (const [op, errno] of Object.entries(want)) {
        expect(new Set(v[op]), `${op} in phase ${n}`).toEqual(new Set([errno]));
      }
    };
    await rounds(1);
    // a process of no job under the enforced cgroup (the runner itself, a system service) is not
    // judged: the default policy must never cut the host's own services off
    const stranger = spawnBackground(
      inCgroup(
        cg.child("runner-service"),
        [],
        work.exec(PYTHON, join(FIXTURES, "enforce_client.py"), "tcp:192.0.2.11:80"),
      ),
      { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
    );
    await poll(() => stranger.child.exitCode !== null, 10_000);
    expect(stranger.stdout(), stranger.stderr()).toBe("RES tcp:192.0.2.11:80 0\n");
    expectAll(jobs.a, 1, { "tcp:192.0.2.10:80": 0, "tcp:192.0.2.11:80": EPERM });
    expectAll(jobs.b, 1, { "tcp:192.0.2.10:80": 0, "tcp:192.0.2.11:80": EPERM });
    expectAll(jobs.c, 1, { "tcp:192.0.2.10:80": EPERM, "tcp:192.0.2.11:80": EPERM }); // no proj/c.conf: default

    // reload: job a now reaches .11 and no longer .10; b keeps its policy
    writeFileSync(join(pol, "proj/a.conf"), "allow-cidr 192.0.2.11/32\n");
    d.bg.child.kill("SIGHUP");
    await d.waitFor((c) => c.type === "policy-reload", "policy-reload");
    expect(d.lines().filter((c) => c.type === "policy-reload")[0]).toMatchObject({
      ok: true,
      policies: 3,
    });
    writeFileSync(join(phase, "n"), "2");
    await rounds(2);
    expectAll(jobs.a, 2, { "tcp:192.0.2.10:80": EPERM, "tcp:192.0.2.11:80": 0 });
    expectAll(jobs.b, 2, { "tcp:192.0.2.10:80": 0, "tcp:192.0.2.11:80": EPERM });
    expectAll(jobs.c, 2, { "tcp:192.0.2.10:80": EPERM, "tcp:192.0.2.11:80": EPERM });

    // a broken policy: refused with FILE:LINE, nothing changes (b would lose .10 if it applied)
    writeFileSync(join(pol, "proj/b.conf"), "allow-cidr 192.0.2.11/32\nallow-cidr nonsense\n");
    d.bg.child.kill("SIGHUP");
    const bad = await d.waitFor(
      (c) => c.type === "policy-reload" && c.ok === false,
      "a refused reload",
    );
    expect(String(bad.error)).toMatch(/proj\/b\.conf:2: invalid CIDR "nonsense"/);
    expect(d.bg.stderr()).toMatch(/policy reload refused, the policies in force stay/);
    writeFileSync(join(phase, "n"), "3");
    await rounds(3);
    expectAll(jobs.a, 3, { "tcp:192.0.2.10:80": EPERM, "tcp:192.0.2.11:80": 0 });
    expectAll(jobs.b, 3, { "tcp:192.0.2.10:80": 0, "tcp:192.0.2.11:80": EPERM });

    writeFileSync(join(phase, "stop"), "");
    await Promise.all(
      Object.values(jobs).map((bg) => poll(() => bg.child.exitCode !== null, 10_000)),
    );
    // every job's log is sealed (each ends on its own, about a second after its last process)
    for (const name of ["a", "b", "c"])
      await d.waitFor(
        (c) => c.type === "job-end" && c.job === `DPNDNCY_JOB=${name}-${nonce}`,
        `job-end of ${name}`,
      );
    // the logs: deny records name the rule; the control stream reported each deny of its job
    for (const name of ["a", "b", "c"] as const) {
      const key = `DPNDNCY_JOB=${name}-${nonce}`;
      const start = d.lines().find((c) => c.type === "job-start" && c.job === key);
      expect(start).toMatchObject({ policy: name === "c" ? "default" : `proj/${name}.conf` });
      const log = readLog(String(start?.log));
      expect(log.errors).toEqual([]);
      expectSealedLog(log, true);
      const denies = workload(log).filter(
        (e): e is ConnectEv => e.kind === "connect" && e.verdict === "deny",
      );
      expect(denies.length).toBeGreaterThan(0);
      for (const e of denies) expect(e.rule).toBe("default-deny");
      const reported = d.lines().filter((c) => c.type === "deny" && c.job === key);
      expect(reported.length).toBe(denies.length);
      expect((reported[0]?.record as ConnectEv | undefined)?.verdict).toBe("deny");
    }
    // the stats line (every second) counts the same denies
    const denies = d.lines().filter((c) => c.type === "deny").length;
    const counted = await poll(() => {
      const st = d
        .lines()
        .filter((c) => c.type === "stats")
        .at(-1) as Ctl & { verdicts: { deny: number } };
      return st?.verdicts.deny === denies;
    }, 5000);
    expect(counted, "stats.verdicts.deny equals the deny lines").toBe(true);
  });
});

describeKernel("daemon: full attribution maps never fail open", () => {
  it("a job that fills the process-to-job map cannot get a process out of judgement: the failure is counted and reported, and processes left without a job are judged by the strictest policy, never exempt-no-job", async () => {
    const inet = await Netns.create();
    const work = await Netns.create();
    await work.vethTo(inet, ["192.0.2.2/24"], ["192.0.2.10/24", "192.0.2.11/24"]);
    await startServers(inet, ["tcp:[::]:80"]);
    const cg = testCgroup("full");
    const pol = tempDir("policies");
    writeFileSync(join(pol, "default.conf"), "allow-cidr 192.0.2.10/32\n");
    // a small map stands in for a host with 32768 job processes alive
    const d = await startDaemon(
      ["--mode", "enforce", "--cgroup", cg.path, "--policy-dir", pol],
      ["env", "DPNDNCY_PROC_MAP_ENTRIES=64"],
    );
    const nonce = `${process.pid}-${Date.now()}`;
    const script = [
      'pids=""; for i in $(seq 80); do sleep 60 & pids="$pids $!"; done', // the job's own processes fill the map
      `${PYTHON} ${join(FIXTURES, "enforce_client.py")} tcp:192.0.2.10:80 tcp:192.0.2.11:80`,
      "kill $pids; echo done",
    ].join("\n");
    const bg = spawnBackground(
      inCgroup(cg.child("job"), [`DPNDNCY_JOB=full-${nonce}`], work.exec("/bin/sh", "-c", script)),
      { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
    );
    onCleanup(() => bg.stop());
    await poll(() => bg.child.exitCode !== null, 30_000);
    // the client got no job: judged by the strictest policy (nothing allowed), not exempt
    expect(
      bg
        .stdout()
        .split("\n")
        .filter((l) => l.startsWith("RES ")),
      bg.stderr(),
    ).toEqual(["RES tcp:192.0.2.10:80 1", "RES tcp:192.0.2.11:80 1"]);
    const err = await d.waitFor(
      (c) => c.type === "error" && /attribution/.test(String(c.message)),
      "an attribution error",
    );
    expect(String(err.message)).toMatch(/strictest policy/);
    const deny = await d.waitFor(
      (c) => c.type === "deny" && (c.record as ConnectEv).addr === "192.0.2.11",
      "the deny of 192.0.2.11",
    );
    expect(deny.job ?? null).toBe(null); // a process of no job: in no log, but reported
    expect(deny.record).toMatchObject({ verdict: "deny", rule: "unattributed", result: -1 });
    const st = await d.waitFor(
      (c) => c.type === "stats" && Number(c.attribution_failures) > 0,
      "attribution_failures in stats",
    );
    expect(Number(st.attribution_failures)).toBeGreaterThan(0);
    expect(d.bg.stderr()).toMatch(/attribution/);
  });
});

/** `count` allow-cidr rules for addresses nobody connects to: a policy of some size */
function fillerRules(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `allow-cidr 10.${(i >> 8) & 255}.${i & 255}.1/32`);
}

interface ReloadLab {
  /** the job's namespace (192.0.2.2), reaching `inet`'s servers on port 80 */
  work: Netns;
  cg: TestCgroup;
  pol: string;
  d: Daemon;
  /** writes policy(n) as default.conf, SIGHUPs the daemon and waits for its n-th policy-reload */
  reload(n: number): Promise<void>;
}

/**
 * What the reload tests share: a job namespace with a veth to a namespace holding TCP servers
 * on port 80 at `serverAddrs`, a test cgroup, and an enforcing daemon whose policy directory's
 * default.conf is policy(0).
 */
async function reloadLab(
  tag: string,
  serverAddrs: string[],
  policy: (n: number) => string,
  reloadTimeoutMs?: number,
): Promise<ReloadLab> {
  const inet = await Netns.create();
  const work = await Netns.create();
  await work.vethTo(inet, ["192.0.2.2/24"], serverAddrs);
  await startServers(inet, ["tcp:[::]:80"]);
  const cg = testCgroup(tag);
  const pol = tempDir("policies");
  writeFileSync(join(pol, "default.conf"), policy(0));
  const d = await startDaemon(["--mode", "enforce", "--cgroup", cg.path, "--policy-dir", pol]);
  const reload = async (n: number) => {
    writeFileSync(join(pol, "default.conf"), policy(n));
    d.bg.child.kill("SIGHUP");
    await d.waitFor(
      (c) =>
        c.type === "policy-reload" &&
        d.lines().filter((x) => x.type === "policy-reload").length >= n,
      `reload ${n}`,
      reloadTimeoutMs,
    );
  };
  return { work, cg, pol, d, reload };
}

describeKernel("daemon: a policy reload is atomic for running jobs", () => {
  it("a job that connects to an address its policy allows, all through forty reloads of that policy, never gets EPERM", async () => {
    // a policy of some size, the allowed address last: a reload takes a while to push
    const filler = fillerRules(300);
    const policy = (n: number) =>
      [`# revision ${n}`, ...filler, "allow-cidr 192.0.2.10/32", ""].join("\n");
    const { work, cg, d, reload } = await reloadLab("reload", ["192.0.2.10/24"], policy);
    const phase = tempDir("phase");
    const loop = [
      "import errno, os, socket, sys",
      "ok = bad = 0",
      `while not os.path.exists('${phase}/stop'):`,
      "    s = socket.socket(); s.settimeout(2)",
      "    try:",
      "        s.connect(('192.0.2.10', 80)); ok += 1",
      "    except OSError as e:",
      "        bad += 1; print('ERR', e.errno, flush=True)",
      "    s.close()",
      "print('DONE', ok, bad, flush=True)",
    ].join("\n");
    const nonce = `${process.pid}-${Date.now()}`;
    const bg = spawnBackground(
      inCgroup(cg.child("job"), [`DPNDNCY_JOB=reload-${nonce}`], work.exec(PYTHON, "-c", loop)),
      { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
    );
    onCleanup(() => writeFileSync(join(phase, "stop"), ""));
    await d.waitFor((c) => c.type === "job-start", "job-start");
    for (let n = 1; n <= 40; n++) await reload(n);
    writeFileSync(join(phase, "stop"), "");
    await poll(() => bg.child.exitCode !== null, 20_000);
    const reloads = d.lines().filter((c) => c.type === "policy-reload");
    expect(reloads.filter((c) => c.ok !== true)).toEqual([]);
    const done = /^DONE (\d+) (\d+)$/m.exec(bg.stdout());
    expect(done, bg.stdout() + bg.stderr()).not.toBeNull();
    expect(Number(done?.[1])).toBeGreaterThan(100);
    expect({ failed: Number(done?.[2]), out: bg.stdout().slice(0, 400) }).toEqual({
      failed: 0,
      out: bg.stdout().slice(0, 400),
    });
  });
});

describeKernel("daemon: many reloads of a large policy", () => {
  it("a 3,000-rule policy reloaded twelve times (more rules than the table holds, all told): every reload is taken and the last revision is in force, with its rules named", async () => {
    const filler = fillerRules(3000);
    // odd revisions allow .10, even ones .11: the last (12) must allow .11 and only it
    const policy = (n: number) =>
      [`# revision ${n}`, ...filler, `allow-cidr 192.0.2.${n % 2 ? 10 : 11}/32`, ""].join("\n");
    const { work, cg, pol, d, reload } = await reloadLab(
      "bigreload",
      ["192.0.2.10/24", "192.0.2.11/24"],
      policy,
      30_000,
    );
    const REVISIONS = 12;
    for (let n = 1; n <= REVISIONS; n++) await reload(n);
    const reloads = d.lines().filter((c) => c.type === "policy-reload");
    expect(reloads.map((c) => c.ok)).toEqual(Array(REVISIONS).fill(true));
    expect(d.bg.stderr()).not.toMatch(/refused|too many/);
    const nonce = `${process.pid}-${Date.now()}`;
    /** a job connecting to .10 and .11: .11 (the last revision's) is allowed, .10 is not */
    const expectLastRevision = async (job: string) => {
      const c = spawnBackground(
        inCgroup(
          cg.child(job),
          [`DPNDNCY_JOB=${job}-${nonce}`],
          work.exec(
            PYTHON,
            join(FIXTURES, "enforce_client.py"),
            "tcp:192.0.2.10:80",
            "tcp:192.0.2.11:80",
          ),
        ),
        { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
      );
      await poll(() => c.child.exitCode !== null, 20_000);
      expect(c.stdout(), c.stderr()).toBe("RES tcp:192.0.2.10:80 1\nRES tcp:192.0.2.11:80 0\n");
    };
    await expectLastRevision("big");
    // the job's log names the rule that allowed .11 (a reused rule number must carry the new name)
    const start = await d.waitFor((c) => c.type === "job-start", "job-start");
    await d.waitFor((c) => c.type === "job-end", "job-end", 30_000);
    const log = readLog(String(start.log));
    const to = (addr: string) =>
      workload(log).find((e): e is ConnectEv => e.kind === "connect" && e.addr === addr);
    expect(to("192.0.2.11")).toMatchObject({ verdict: "allow", rule: "allow-cidr 192.0.2.11/32" });
    expect(to("192.0.2.10")).toMatchObject({ verdict: "deny", rule: "default-deny" });
    // more rules in force than the table holds: refused, loudly, and the policies in force stay
    writeFileSync(
      join(pol, "huge.conf"),
      Array.from(
        { length: 14000 },
        (_, i) => `allow-cidr 10.1${(i >> 12) & 3}.${(i >> 6) & 63}.${(i & 63) * 4}/32`,
      ).join("\n"),
    );
    d.bg.child.kill("SIGHUP");
    await d.waitFor((c) => c.type === "policy-reload" && c.ok === false, "a refused reload");
    expect(d.bg.stderr()).toMatch(
      /huge\.conf.*too many allow entries in force \(max 16384 over all policies\)/,
    );
    expect(d.bg.stderr()).toMatch(/policy reload refused, the policies in force stay/);
    await expectLastRevision("big2");
  });
});

describeKernel("daemon with the systemd unit's capabilities", () => {
  it("the capability set of deploy/systemd/dpndncy-agent.service is enough to observe and enforce (with the hooks it allows)", async () => {
    const setpriv = unitSetpriv();
    // Do what systemd does before it starts the unit: sys-kernel-tracing.mount and
    // sys-fs-bpf.mount (the unit is ordered after both), then drop to the unit's capabilities.
    // Only what this test mounted is unmounted.
    for (const [fstype, path] of [
      ["tracefs", "/sys/kernel/tracing"],
      ["bpf", "/sys/fs/bpf"],
    ] as const) {
      if (!readFileSync("/proc/self/mounts", "utf8").includes(` ${path} ${fstype} `)) {
        await runOk(["mount", "-t", fstype, fstype, path]);
        onCleanup(() => runOk(["umount", path]).then(() => undefined));
      }
    }
    const inet = await Netns.create();
    const work = await Netns.create();
    await work.vethTo(inet, ["192.0.2.2/24"], ["192.0.2.10/24", "192.0.2.11/24"]);
    await startServers(inet, ["tcp:[::]:80"]);
    const cg = testCgroup("caps");
    const pol = tempDir("policies");
    writeFileSync(join(pol, "default.conf"), "allow-cidr 192.0.2.10/32\n");
    const d = await startDaemon(
      ["--mode", "enforce", "--cgroup", cg.path, "--policy-dir", pol],
      setpriv,
    );
    const attach = d.lines()[0]?.attach as Record<string, string>;
    // what the reduced set gives up on this kernel, said in the daemon-start line
    expect(attach.exec).toBe("tracepoint/sched/sched_process_exec");
    expect(attach.connect).toMatch(/^cgroup\/connect4/);
    const home = tempDir("home");
    mkdirSync(join(home, ".ssh"));
    writeFileSync(join(home, ".ssh/id_rsa"), "fake\n");
    const nonce = `${process.pid}-${Date.now()}`;
    const bg = spawnBackground(
      inCgroup(
        cg.child("job"),
        [`DPNDNCY_JOB=caps-${nonce}`, `HOME=${home}`],
        work.exec(
          "/bin/sh",
          "-c",
          `cat "$HOME/.ssh/id_rsa" >/dev/null; ${PYTHON} ${join(FIXTURES, "enforce_client.py")} tcp:192.0.2.10:80 tcp:192.0.2.11:80`,
        ),
      ),
    );
    await poll(() => bg.child.exitCode !== null, 20_000);
    expect(bg.stdout()).toContain("RES tcp:192.0.2.10:80 0");
    expect(bg.stdout()).toContain("RES tcp:192.0.2.11:80 1");
    const end = await d.waitFor(
      (c) => c.type === "job-end" && c.job === `DPNDNCY_JOB=caps-${nonce}`,
      "job-end",
    );
    const log = readLog(String(end.log));
    expect(log.errors).toEqual([]);
    expectSealedLog(log, true);
    const kinds = new Set(workload(log).map((e) => e.kind));
    expect([...kinds].sort()).toEqual(["connect", "exec", "exit", "file"]);
    const denied = workload(log).filter(
      (e): e is ConnectEv => e.kind === "connect" && e.verdict === "deny",
    );
    expect(denied.map((e) => e.addr)).toEqual(["192.0.2.11"]);
  });
});

describeKernel("daemon: enforcement outlives a crash", () => {
  it("SIGKILL: the pinned verdicts stay until the next daemon takes over (and removes the old pins); stop --state-dir recovers a dead one", async () => {
    const inet = await Netns.create();
    const work = await Netns.create();
    await work.vethTo(inet, ["192.0.2.2/24"], ["192.0.2.10/24", "192.0.2.11/24"]);
    await startServers(inet, ["tcp:[::]:80"]);
    const cg = testCgroup("crash");
    const pol = tempDir("policies");
    writeFileSync(join(pol, "default.conf"), "allow-cidr 192.0.2.10/32\n");
    const stateDir = join(tempDir("state"), "daemon");
    const args = [
      "--mode",
      "enforce",
      "--cgroup",
      cg.path,
      "--policy-dir",
      pol,
      "--state-dir",
      stateDir,
    ];
    const nonce = `${process.pid}-${Date.now()}`;
    let n = 0;
    const probe = async () => {
      n += 1;
      const bg = spawnBackground(
        inCgroup(
          cg.child(`job-${n}`),
          [`DPNDNCY_JOB=crash-${n}-${nonce}`],
          work.exec(
            PYTHON,
            join(FIXTURES, "enforce_client.py"),
            "tcp:192.0.2.10:80",
            "tcp:192.0.2.11:80",
          ),
        ),
      );
      await poll(() => bg.child.exitCode !== null, 20_000);
      return bg.stdout();
    };
    const enforced = "RES tcp:192.0.2.10:80 0\nRES tcp:192.0.2.11:80 1\n";

    const d1 = await startDaemon(args);
    expect(await probe()).toBe(enforced);
    const pinDir = `/sys/fs/bpf/dpndncy/${d1.bg.pid}`;
    expect(existsSync(pinDir), "enforce mode pins its links").toBe(true);
    d1.bg.child.kill("SIGKILL");
    await poll(() => d1.bg.child.exitCode !== null || d1.bg.child.signalCode !== null, 10_000);
    // the daemon is gone: its jobs are no longer logged, but they are still confined
    expect(await probe()).toBe(enforced);

    // the next daemon takes over and removes its predecessor's pins once armed
    const d2 = await startDaemon(args);
    expect(d2.lines()[0]).toMatchObject({ predecessor: { pid: d1.bg.pid, pins_removed: pinDir } });
    expect(d2.bg.stderr()).toMatch(new RegExp(`a previous daemon \\(pid ${d1.bg.pid}\\) died`));
    expect(existsSync(pinDir)).toBe(false);
    expect(await probe()).toBe(enforced);

    // it dies too; `stop --state-dir` removes what it left, and says the trace is incomplete
    d2.bg.child.kill("SIGKILL");
    await poll(() => d2.bg.child.exitCode !== null || d2.bg.child.signalCode !== null, 10_000);
    const stop = await run([AGENT, "stop", "--state-dir", stateDir]);
    expect(stop.code, stop.stderr).toBe(3);
    expect(stop.stderr).toMatch(/trace is incomplete/);
    expect(existsSync(`/sys/fs/bpf/dpndncy/${d2.bg.pid}`)).toBe(false);
    // nothing confines the cgroup any more
    expect(await probe()).toBe("RES tcp:192.0.2.10:80 0\nRES tcp:192.0.2.11:80 0\n");
  });
});
