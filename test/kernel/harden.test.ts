// `dpndncy harden` for real, on a throwaway user: the user has passwordless sudo, harden takes
// it away (sudo -n true fails as that user) while the exact commands kept (the agent's stop)
// still run; --containers takes a Docker-like socket away; --restore puts everything back.
// SAFETY: only a user created here is ever named in a sudoers file; every file this test or
// harden writes is removed in cleanup, and the user is deleted, whatever happens.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { parseJson } from "../support/kernel/agent.js";
import { testCgroup } from "../support/kernel/cgroup.js";
import { AGENT, onCleanup, REPO } from "../support/kernel/env.js";
import { run } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";

const DROP_IN = "/etc/sudoers.d/zzzz-dpndncy-harden";

const cli = (args: string[]) =>
  run([process.execPath, join(REPO, "dist/cli.js"), ...args], { timeoutMs: 60_000 });

/** `sudo -n ARGV` as USER. */
const sudoAs = (user: string, argv: string[]) =>
  run(["runuser", "-u", user, "--", "sudo", "-n", ...argv], { timeoutMs: 30_000 });

describeKernel("harden", () => {
  it("a user with passwordless sudo loses it; the kept agent stop and --restore work", async () => {
    for (const tool of ["/usr/bin/sudo", "/usr/sbin/visudo", "/usr/sbin/useradd"])
      expect(existsSync(tool), `${tool} is needed (scripts/prereqs.sh installs sudo)`).toBe(true);
    expect(existsSync(DROP_IN), `${DROP_IN} exists before the test: not ours to touch`).toBe(false);
    const user = `dpht${process.pid % 100000}`;
    const grant = `/etc/sudoers.d/dpndncy-test-${user}`;
    // root-owned places for the installed agent, its state dir, and the restore record
    const root = mkdtempSync("/run/dpndncy-harden-test-");
    onCleanup(() => rmSync(root, { recursive: true, force: true }));
    const record = join(root, "record.json");
    const installDir = join(root, "bin");
    const stateDir = join(root, "state");

    const add = await run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", user]);
    expect(add.code, add.stderr).toBe(0);
    onCleanup(async () => {
      await run(["userdel", "-f", user]);
    });
    writeFileSync(grant, `${user} ALL=(ALL:ALL) NOPASSWD:ALL\n`, { mode: 0o440 });
    onCleanup(() => rmSync(grant, { force: true }));
    // whatever happens below, the drop-in goes (it did not exist before; only harden writes it)
    onCleanup(() => {
      if (existsSync(DROP_IN) && readFileSync(DROP_IN, "utf8").startsWith("# written by dpndncy"))
        rmSync(DROP_IN, { force: true });
    });

    const before = await sudoAs(user, ["true"]);
    expect(before.code, `sudo before harden: ${before.stderr}`).toBe(0);
    // Leaving the enforced cgroup (issue #23, item 6) needs root: a job writes itself into
    // another cgroup's cgroup.procs. With sudo that works; harden takes it away.
    const elsewhere = testCgroup("harden-escape");
    const leaveCgroup = () =>
      run(
        [
          "runuser",
          "-u",
          user,
          "--",
          "/bin/sh",
          "-c",
          `sudo -n /bin/sh -c 'echo $$ > ${elsewhere.path}/cgroup.procs' && echo MOVED; echo $$ > ${elsewhere.path}/cgroup.procs 2>/dev/null && echo MOVED-SELF; true`,
        ],
        { timeoutMs: 30_000 },
      );
    expect((await leaveCgroup()).stdout, "with sudo, a job can leave its cgroup").toContain(
      "MOVED",
    );

    // a socket standing in for /var/run/docker.sock, group-accessible to the user's group
    const sock = join(root, "docker.sock");
    const mk = await run([
      "python3",
      "-c",
      `import socket,os; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(sock)}); os.chmod(${JSON.stringify(sock)},0o660); os.chown(${JSON.stringify(sock)},0,int(os.popen("id -g ${user}").read()))`,
    ]);
    expect(mk.code, mk.stderr).toBe(0);
    const sockBefore = statSync(sock);

    const h = await cli([
      "harden",
      "--user",
      user,
      "--install-agent",
      AGENT,
      "--install-dir",
      installDir,
      "--state-dir",
      stateDir,
      "--allow-command",
      "/usr/bin/id -u",
      "--containers",
      "--docker-socket",
      sock,
      "--record",
      record,
    ]);
    expect(h.code, h.stdout + h.stderr).toBe(0);
    const out = parseJson<{ sudo_denied: boolean; allowed: string[]; agent: string }>(
      h.stdout,
      "harden",
    );
    expect(out.sudo_denied).toBe(true);
    expect(out.agent).toBe(join(installDir, "dpndncy-agent"));
    expect(out.allowed).toEqual([`${out.agent} stop --state-dir ${stateDir}`, "/usr/bin/id -u"]);
    expect(statSync(out.agent)).toMatchObject({ uid: 0, mode: 0o100755 });

    // a later step's sudo fails ...
    const after = await sudoAs(user, ["true"]);
    expect(after.code).not.toBe(0);
    // sudo authenticates before it says no: with -n (and no password on CI users) it stops there
    expect(after.stderr).toMatch(/not allowed|a password is required/);
    const shell = await sudoAs(user, ["/bin/sh", "-c", "id -u"]);
    expect(shell.code).not.toBe(0);
    // ... and so does leaving the cgroup, by sudo or by itself (cgroup.procs is root's)
    const escaped = await leaveCgroup();
    expect(escaped.stdout, escaped.stderr).not.toContain("MOVED");
    // ... the kept commands run as root, exactly as listed
    const id = await sudoAs(user, ["/usr/bin/id", "-u"]);
    expect(id.code, id.stderr).toBe(0);
    expect(id.stdout.trim()).toBe("0");
    expect((await sudoAs(user, ["/usr/bin/id", "-g"])).code).not.toBe(0);
    const stop = await sudoAs(user, [out.agent, "stop", "--state-dir", stateDir]);
    expect(stop.stderr).toMatch(/no agent running/); // sudo let it run; there is just no agent
    expect((await sudoAs(user, [out.agent, "stop", "--state-dir", "/tmp"])).stderr).toMatch(
      /not allowed|a password is required/,
    );
    // the socket is root's alone
    expect(statSync(sock)).toMatchObject({ uid: 0, gid: 0 });
    expect(statSync(sock).mode & 0o777).toBe(0o660);

    const r = await cli(["harden", "--restore", "--record", record]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(DROP_IN)).toBe(false);
    expect((await sudoAs(user, ["true"])).code).toBe(0);
    expect(statSync(sock)).toMatchObject({ uid: sockBefore.uid, gid: sockBefore.gid });
  });

  it("refuses root, and a user that does not exist, without touching sudoers", async () => {
    const r = await cli(["harden", "--user", "root", "--record", "/run/dpndncy-harden-none.json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refusing to harden root/);
    const n = await cli(["harden", "--user", "no-such-user-dpndncy"]);
    expect(n.code).toBe(1);
    expect(existsSync(DROP_IN)).toBe(false);
  });
});
