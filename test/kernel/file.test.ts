// file events: sensitive-path opens under a temp HOME reach the log with an absolute path and
// the rule that matched; non-sensitive opens do not.
import { chmodSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { agentRun, expectRunOk } from "../support/kernel/agent.js";
import { PYTHON, tempDir } from "../support/kernel/env.js";
import { byKind, type ExecEv, type FileEv } from "../support/kernel/log.js";
import { describeKernel } from "../support/kernel/suite.js";

const O_ACCMODE = 3;
const O_WRONLY = 1;
const O_APPEND = 0o2000;

/** A fake home: ~/.ssh/id_rsa, ~/.aws/credentials (sensitive) and ~/notes.txt (not). */
function fakeHome(base: string): string {
  mkdirSync(join(base, ".ssh"), { recursive: true, mode: 0o700 });
  mkdirSync(join(base, ".aws"), { recursive: true });
  writeFileSync(join(base, ".ssh/id_rsa"), "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n");
  writeFileSync(join(base, ".aws/credentials"), "[default]\naws_access_key_id = AKIAEXAMPLE\n");
  writeFileSync(join(base, "notes.txt"), "nothing to see\n");
  return base;
}

function execOf(evs: ExecEv[], pid: number): ExecEv | undefined {
  return evs.find((e) => e.pid === pid);
}

describeKernel("file", () => {
  it("reads of ~/.ssh/id_rsa and ~/.aws/credentials (absolute, relative to cwd, via dirfd) are events; ~/notes.txt is not", async () => {
    const home = fakeHome(tempDir("home"));
    const script = [
      'cat "$HOME/.ssh/id_rsa" "$HOME/.aws/credentials" "$HOME/notes.txt" >/dev/null',
      'cd "$HOME/.ssh" && cat id_rsa >/dev/null',
      'cd "$HOME" && cat notes.txt >/dev/null',
      `${PYTHON} -c 'import os; d = os.open(os.environ["HOME"] + "/.aws", os.O_RDONLY); os.close(os.open("credentials", os.O_RDONLY, dir_fd=d))'`,
      'echo "# appended" >> "$HOME/.aws/credentials"',
    ].join("\n");
    const r = await agentRun({
      cmd: ["/bin/sh", "-c", script],
      env: { ...process.env, HOME: home },
    });
    expectRunOk(r);
    const execs = byKind.exec(r.workload);
    const files = byKind.file(r.workload);
    const key = join(home, ".ssh/id_rsa");
    const creds = join(home, ".aws/credentials");
    const who = (f: FileEv) => {
      const ex = execOf(execs, f.pid);
      return ex?.argv[0] === "cat"
        ? `cat ${ex.argv.slice(1).join(" ")}`
        : ex
          ? `${ex.comm} ${ex.filename}`
          : `pid ${f.pid}`;
    };
    const summary = files.map((f) => `${who(f)} -> ${f.path}`).sort();
    const catAll = `cat ${key} ${creds} ${join(home, "notes.txt")}`;
    expect(summary).toEqual(
      [
        `${catAll} -> ${key}`,
        `${catAll} -> ${creds}`,
        `cat id_rsa -> ${key}`,
        `python3 ${PYTHON} -> ${creds}`,
        `sh /bin/sh -> ${creds}`, // the shell's own >> redirection
      ].sort(),
    );
    for (const f of files) {
      expect(f.path.startsWith("/")).toBe(true);
      expect(f.uid).toBe(0);
      expect(f.ppid).toBe(execOf(execs, f.pid)?.ppid ?? f.ppid);
      // the default rule names (agent-c/base/config.c)
      expect(f.rule).toBe(f.path === key ? "ssh-key" : "aws-credentials");
    }
    const reads = files.filter((f) => f.comm !== "sh");
    for (const f of reads) expect(f.flags & O_ACCMODE).toBe(0);
    const append = files.find((f) => f.comm === "sh") as FileEv;
    expect(append.flags & O_ACCMODE).toBe(O_WRONLY);
    expect(append.flags & O_APPEND).toBe(O_APPEND);
    expect(append.pid).toBe(r.rootPid);
    // the non-sensitive file never shows up
    expect(byKind.file(r.log.events).filter((f) => f.path.endsWith("notes.txt"))).toEqual([]);
  });

  it("--config adds a rule, excludes a path and allowlists a benign reader", async () => {
    const home = fakeHome(tempDir("home"));
    writeFileSync(join(home, ".deploy-token"), "tok\n");
    writeFileSync(join(home, ".ssh/id_ecdsa"), "fake\n");
    const bin = tempDir("bin");
    copyFileSync("/bin/cat", join(bin, "benign-cat"));
    chmodSync(join(bin, "benign-cat"), 0o755);
    const config = join(tempDir("cfg"), "agent.conf");
    writeFileSync(
      config,
      [
        "# test config",
        "mode observe",
        "file deploy-token ~/.deploy-token",
        "file-exclude ~/.ssh/id_ecdsa",
        `allow-exe ${join(bin, "benign-cat")}`,
        "",
      ].join("\n"),
    );
    const script = [
      'cat "$HOME/.deploy-token" "$HOME/.ssh/id_ecdsa" "$HOME/.ssh/id_rsa" >/dev/null',
      `"${join(bin, "benign-cat")}" "$HOME/.ssh/id_rsa" "$HOME/.deploy-token" >/dev/null`,
    ].join("\n");
    const r = await agentRun({
      cmd: ["/bin/sh", "-c", script],
      args: ["--mode", "observe", "--config", config],
      env: { ...process.env, HOME: home },
    });
    expectRunOk(r);
    const files = byKind.file(r.workload).map((f) => `${f.comm} ${f.rule} ${f.path}`);
    expect(files.sort()).toEqual(
      [
        `cat deploy-token ${join(home, ".deploy-token")}`,
        `cat ssh-key ${join(home, ".ssh/id_rsa")}`,
      ].sort(),
    );
  });

  it("ways around a path filter: a symlink, '..' components, open(2) and openat2(2) syscalls", async () => {
    const home = fakeHome(tempDir("home"));
    const key = join(home, ".ssh/id_rsa");
    const elsewhere = tempDir("link");
    symlinkSync(key, join(elsewhere, "harmless.txt"));
    const prog = [
      "import ctypes, os, struct, sys",
      "libc = ctypes.CDLL(None, use_errno=True)",
      "libc.syscall.restype = ctypes.c_long",
      "key = os.environ['HOME'].encode() + b'/.ssh/id_rsa'",
      "fd = libc.syscall(2, key, os.O_RDONLY)  # SYS_open",
      "assert fd >= 0, ctypes.get_errno(); os.close(fd)",
      "how = struct.pack('QQQ', os.O_RDONLY, 0, 0)  # struct open_how",
      "fd = libc.syscall(437, -100, key, how, len(how))  # SYS_openat2, AT_FDCWD",
      "assert fd >= 0, ctypes.get_errno(); os.close(fd)",
    ].join("\n");
    const script = [
      `cat "${join(elsewhere, "harmless.txt")}" >/dev/null`,
      'cd "$HOME/.aws" && cat ../.ssh/./id_rsa >/dev/null',
      `${PYTHON} -c "$0"`,
    ].join("\n");
    const r = await agentRun({
      cmd: ["/bin/sh", "-c", script, prog],
      env: { ...process.env, HOME: home },
    });
    expectRunOk(r);
    const files = byKind.file(r.workload);
    const execs = byKind.exec(r.workload);
    const who = (f: FileEv) => execOf(execs, f.pid)?.argv.slice(0, 2).join(" ") ?? `pid ${f.pid}`;
    expect(files.map((f) => `${who(f)} ${f.rule} ${f.path}`).sort()).toEqual(
      [
        `cat ${join(elsewhere, "harmless.txt")} ssh-key ${key}`,
        `cat ../.ssh/./id_rsa ssh-key ${key}`,
        `${PYTHON} -c ssh-key ${key}`,
        `${PYTHON} -c ssh-key ${key}`,
      ].sort(),
    );
  });

  it("/proc/<pid>/environ of another process is an event; /proc/self/environ is not", async () => {
    const script = 'cat /proc/$$/environ >/dev/null; cat /proc/self/environ >/dev/null; echo "$$"';
    const r = await agentRun({ cmd: ["/bin/sh", "-c", script] });
    expectRunOk(r);
    const sh = r.rootPid as number;
    const files = byKind.file(r.workload);
    expect(files.map((f) => f.path)).toEqual([`/proc/${sh}/environ`]);
    expect(files[0]?.comm).toBe("cat");
    expect(files[0]?.ppid).toBe(sh);
    expect(files[0]?.rule).toBe("proc-environ");
  });

  it("arbitrary bytes in the path and in comm are escaped into valid JSON", async () => {
    const base = tempDir("weird");
    // a directory name with a quote, a newline, a backslash and the non-UTF-8 byte 0xff
    const dirBytes = Buffer.concat([Buffer.from(`${base}/we"ird\nna\\me`), Buffer.from([0xff])]);
    mkdirSync(Buffer.concat([dirBytes, Buffer.from("/.ssh")]), { recursive: true });
    writeFileSync(Buffer.concat([dirBytes, Buffer.from("/.ssh/id_ed25519")]), "fake key\n");
    const prog = [
      "import ctypes, os",
      "ctypes.CDLL(None).prctl(15, b'x\"\\n\\xffy', 0, 0, 0)", // PR_SET_NAME
      "home = os.environb[b'WEIRD_HOME']",
      "os.close(os.open(home + b'/.ssh/id_ed25519', os.O_RDONLY))",
    ].join("\n");
    const env = { ...process.env, WEIRD_HOME: "" };
    // pass the raw bytes through a shell variable: Node cannot put 0xff into an env string
    const r = await agentRun({
      cmd: [
        "/bin/sh",
        "-c",
        `WEIRD_HOME="$(printf '%s/we"ird\\nna\\\\me\\377' "${base}")" exec ${PYTHON} -c "$0"`,
        prog,
      ],
      env,
    });
    expectRunOk(r);
    const files = byKind.file(r.workload);
    expect(files).toHaveLength(1);
    const f = files[0] as FileEv;
    const mark = ["\u00ff", "\ufffd"];
    expect(mark.map((m) => `${base}/we"ird\nna\\me${m}/.ssh/id_ed25519`)).toContain(f.path);
    expect(mark.map((m) => `x"\n${m}y`)).toContain(f.comm);
    const raw = r.log.lines[r.log.events.indexOf(f)] as string;
    expect(JSON.parse(JSON.stringify(JSON.parse(raw)))).toEqual(f);
  });
});
