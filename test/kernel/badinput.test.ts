// Bad input and faults: each is a non-zero exit with one clear line on stderr naming the
// problem, before anything is attached (checked from outside: programs, links, pins, mounts)
// and before the workload runs.
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { agentCli } from "../support/kernel/agent.js";
import { cgroup2Mount, testCgroup } from "../support/kernel/cgroup.js";
import { AGENT, onCleanup, tempDir } from "../support/kernel/env.js";
import { inPrivateMounts, type RunResult, run, spawnBackground } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";
import { leaksSettled, snapshot } from "../support/kernel/sysstate.js";
import { unitSetpriv } from "../support/kernel/systemd-unit.js";

/** Runs `attempt` and checks the refusal: exit != 0, one line naming `names`, nothing left attached. */
async function expectRefused(
  what: string,
  attempt: () => Promise<RunResult>,
  names: RegExp,
  sentinel?: string,
): Promise<void> {
  const before = await snapshot();
  const r = await attempt();
  expect(r.code, `${what}: exit code (stderr: ${r.stderr})`).not.toBe(0);
  expect(r.code, `${what}: killed by a signal`).not.toBeNull();
  const err = r.stderr.trim();
  expect(err.split("\n"), `${what}: exactly one line on stderr`).toHaveLength(1);
  expect(err, what).toMatch(names);
  if (sentinel !== undefined)
    expect(existsSync(sentinel), `${what}: the workload must not run`).toBe(false);
  expect(await leaksSettled(before), `${what}: left attached or mounted`).toEqual([]);
}

describeKernel("bad input", () => {
  it("unwritable log path (missing directory, a directory, a read-only file)", async () => {
    const d = tempDir("bad");
    const sentinel = join(d, "ran");
    const dir = join(d, "a-directory");
    mkdirSync(dir);
    for (const log of [join(d, "missing/sub/events.ndjson"), dir, "/proc/version"]) {
      const esc = log.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
      await expectRefused(
        `run --log ${log}`,
        () => agentCli(["run", "--log", log, "--", "/usr/bin/touch", sentinel]),
        new RegExp(esc),
        sentinel,
      );
      await expectRefused(
        `start --log ${log}`,
        () => agentCli(["start", "--log", log, "--state-dir", join(d, "state")]),
        new RegExp(esc),
      );
    }
  });

  it("unknown option before the command, missing command, bad --mode", async () => {
    const d = tempDir("bad");
    const sentinel = join(d, "ran");
    const log = join(d, "events.ndjson");
    await expectRefused(
      "run --no-such-option",
      () => agentCli(["run", "--no-such-option", "--log", log, "--", "/usr/bin/touch", sentinel]),
      /--no-such-option/,
      sentinel,
    );
    await expectRefused(
      "run without a command",
      () => agentCli(["run", "--log", log]),
      /command|CMD|--/i,
    );
    await expectRefused(
      "run --mode bogus",
      () => agentCli(["run", "--mode", "bogus", "--log", log, "--", "/usr/bin/touch", sentinel]),
      /bogus/,
      sentinel,
    );
    expect(existsSync(log)).toBe(false);
  });

  it("a forced file hook the kernel cannot attach (--file-hook kprobe here) or does not know", async () => {
    const d = tempDir("bad");
    const sentinel = join(d, "ran");
    const log = join(d, "events.ndjson");
    const probe = JSON.parse((await agentCli(["probe"])).stdout) as {
      hooks: { file: { available: Record<string, boolean> } };
    };
    const unavailable = Object.entries(probe.hooks.file.available)
      .filter(([, ok]) => !ok)
      .map(([point]) => point.split("/")[0] as string);
    for (const hook of unavailable) {
      await expectRefused(
        `--file-hook ${hook}`,
        () =>
          agentCli(["run", "--file-hook", hook, "--log", log, "--", "/usr/bin/touch", sentinel]),
        new RegExp(hook),
        sentinel,
      );
    }
    await expectRefused(
      "--file-hook bogus",
      () =>
        agentCli(["run", "--file-hook", "bogus", "--log", log, "--", "/usr/bin/touch", sentinel]),
      /bogus/,
      sentinel,
    );
  });

  it("malformed or missing config file", async () => {
    const d = tempDir("bad");
    const sentinel = join(d, "ran");
    const log = join(d, "events.ndjson");
    const cases: Array<[string, string, RegExp]> = [
      ["unknown-directive.conf", "mode observe\nfrobnicate yes\n", /:2:.*frobnicate/],
      ["bad-pattern.conf", "file secrets relative/path\n", /:1:/],
      ["bad-ringbuf.conf", "ringbuf-mb 3\n", /:1:.*ringbuf/],
      ["yaml.conf", "mode: observe\nfile:\n  - ~/.token\n", /:1:/],
      ["json.conf", '{"mode": "observe"}\n', /:1:/],
      ["job-marker-name.conf", "job-marker 1CI_JOB_ID\n", /:1:.*job-marker/],
      [
        "job-marker-twice.conf",
        "job-marker CI_JOB_ID\njob-marker CI_JOB_ID\n",
        /:2:.*CI_JOB_ID given twice/,
      ],
      [
        "job-marker-many.conf",
        "job-marker A\njob-marker B\njob-marker C\njob-marker D\njob-marker E\n",
        /:5:.*at most 4/,
      ],
      [
        "job-identity-kind.conf",
        "job-identity branch CI_COMMIT_REF_NAME\n",
        /:1:.*'project' or 'name'/,
      ],
    ];
    for (const [name, content, why] of cases) {
      const cfg = join(d, name);
      writeFileSync(cfg, content);
      await expectRefused(
        `config ${name}`,
        () => agentCli(["run", "--config", cfg, "--log", log, "--", "/usr/bin/touch", sentinel]),
        new RegExp(`${cfg.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}${why.source}`),
        sentinel,
      );
    }
    const missing = join(d, "missing.conf");
    await expectRefused(
      "missing config",
      () => agentCli(["run", "--config", missing, "--log", log, "--", "/usr/bin/touch", sentinel]),
      new RegExp(missing.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")),
      sentinel,
    );
  });

  it("daemon: missing or bad options, an enforce cgroup that is a root, a broken policy directory, a second daemon on one state dir", async () => {
    const d = tempDir("bad-daemon");
    const jobs = join(d, "jobs");
    mkdirSync(jobs);
    const state = join(d, "state");
    const pol = join(d, "policies");
    mkdirSync(join(pol, "proj"), { recursive: true });
    writeFileSync(join(pol, "default.conf"), "allow-cidr 192.0.2.10/32\n");
    writeFileSync(join(pol, "proj/a.conf"), "allow-cidr 192.0.2.10/32\nallow-host bad..name\n");
    const hostWide = join(d, "hostwide");
    mkdirSync(hostWide);
    writeFileSync(join(hostWide, "default.conf"), "dns-resolver 192.0.2.53\n");
    const cg = testCgroup("bad-daemon");
    const daemon = (...args: string[]) => agentCli(["daemon", "--state-dir", state, ...args]);
    const cases: Array<[string, string[], RegExp]> = [
      ["no --jobs-dir", [], /--jobs-dir DIR is required/],
      ["--jobs-dir missing", ["--jobs-dir", join(d, "nope")], /--jobs-dir .*nope: not a directory/],
      [
        "--job-idle not a number",
        ["--jobs-dir", jobs, "--job-idle", "soon"],
        /--job-idle .*'soon'/,
      ],
      [
        "enforce without --cgroup",
        ["--jobs-dir", jobs, "--mode", "enforce"],
        /needs --cgroup PATH/,
      ],
      [
        "--policy-dir in observe mode",
        ["--jobs-dir", jobs, "--policy-dir", pol],
        /--policy-dir is only for --mode enforce/,
      ],
      [
        "--cgroup a cgroup v2 root",
        ["--jobs-dir", jobs, "--mode", "enforce", "--cgroup", cgroup2Mount()],
        /refusing to enforce on .*cgroup v2 root/,
      ],
      [
        "a broken policy",
        ["--jobs-dir", jobs, "--mode", "enforce", "--cgroup", cg.path, "--policy-dir", pol],
        /proj\/a\.conf:2: invalid name "bad\.\.name"/,
      ],
      [
        "a host-wide directive in a job policy",
        ["--jobs-dir", jobs, "--mode", "enforce", "--cgroup", cg.path, "--policy-dir", hostWide],
        /default\.conf:1: only allow-host, allow-suffix and allow-cidr belong in a job policy/,
      ],
      ["an unknown option", ["--jobs-dir", jobs, "--log", join(d, "x")], /unknown option '--log'/],
    ];
    for (const [what, args, why] of cases)
      await expectRefused(`daemon: ${what}`, () => daemon(...args), why);
    // a second daemon on the state dir of one that runs: refused, the first keeps running
    const first = spawnBackground([AGENT, "daemon", "--state-dir", state, "--jobs-dir", jobs]);
    onCleanup(() => first.stop());
    await first.waitForLine(/"daemon-start"/, 30_000);
    await expectRefused(
      "daemon: a second one on one state dir",
      () => daemon("--jobs-dir", jobs),
      /already running with state dir/,
    );
    expect(first.child.exitCode).toBeNull();
  });

  it("daemon under the systemd unit's capabilities on a host with no bpffs: refused, naming the mount unit to order after", async () => {
    // In a private mount namespace with tracefs mounted and every bpffs at /sys/fs/bpf gone,
    // as on a host where sys-fs-bpf.mount has not run: the agent (no CAP_SYS_ADMIN) cannot
    // mount it and must say what to do. The namespace and its mounts vanish with the process.
    const d = tempDir("bad-caps");
    mkdirSync(join(d, "jobs"));
    const cg = testCgroup("bad-caps");
    const script = [
      "set -e",
      "grep -q ' /sys/kernel/tracing tracefs ' /proc/self/mounts || mount -t tracefs tracefs /sys/kernel/tracing",
      "while grep -q ' /sys/fs/bpf bpf ' /proc/self/mounts; do umount /sys/fs/bpf; done",
      'exec "$@"',
    ].join("\n");
    await expectRefused(
      "daemon: no bpffs and no CAP_SYS_ADMIN",
      () =>
        run(
          inPrivateMounts(
            script,
            ...unitSetpriv(),
            AGENT,
            "daemon",
            "--state-dir",
            join(d, "state"),
            "--jobs-dir",
            join(d, "jobs"),
            "--mode",
            "enforce",
            "--cgroup",
            cg.path,
          ),
        ),
      /bpffs is not mounted at \/sys\/fs\/bpf and mounting it needs CAP_SYS_ADMIN .*After= and Wants= sys-fs-bpf\.mount/,
    );
  });

  it("no BTF (DPNDNCY_BTF_PATH=/nonexistent)", async () => {
    const d = tempDir("bad");
    const sentinel = join(d, "ran");
    const env = { ...process.env, DPNDNCY_BTF_PATH: "/nonexistent/vmlinux" };
    await expectRefused(
      "run without BTF",
      () => agentCli(["run", "--log", join(d, "l.ndjson"), "--", "/usr/bin/touch", sentinel], env),
      /BTF/,
      sentinel,
    );
    await expectRefused(
      "start without BTF",
      () => agentCli(["start", "--log", join(d, "l.ndjson"), "--state-dir", join(d, "state")], env),
      /BTF/,
    );
    const probe = await agentCli(["probe"], env);
    expect(JSON.parse(probe.stdout || "{}").btf ?? false).toBe(false);
  });

  it("not root (uid 65534 via setpriv)", async () => {
    const d = tempDir("bad");
    chmodSync(d, 0o777);
    // a copy the unprivileged user can execute wherever the checkout lives
    const bin = join(d, "dpndncy-agent");
    copyFileSync(AGENT, bin);
    chmodSync(bin, 0o755);
    const sentinel = join(d, "ran");
    const nobody = [
      "setpriv",
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "--inh-caps=-all",
    ];
    await expectRefused(
      "run as uid 65534",
      () =>
        run([
          ...nobody,
          bin,
          "run",
          "--log",
          join(d, "l.ndjson"),
          "--",
          "/usr/bin/touch",
          sentinel,
        ]),
      /root|privilege|permission|CAP_/i,
      sentinel,
    );
    await expectRefused(
      "start as uid 65534",
      () =>
        run([
          ...nobody,
          bin,
          "start",
          "--log",
          join(d, "l2.ndjson"),
          "--state-dir",
          join(d, "state"),
        ]),
      /root|privilege|permission|CAP_/i,
    );
  });
});
