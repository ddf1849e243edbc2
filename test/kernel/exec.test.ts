// exec / exit events and the process tree, under `dpndncy-agent run` on the real kernel.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { agentRun, expectRunOk } from "../support/kernel/agent.js";
import { compileC } from "../support/kernel/cbuild.js";
import { FIXTURES, PYTHON, tempDir } from "../support/kernel/env.js";
import { byKind, type Ev, type ExecEv, subtree } from "../support/kernel/log.js";
import { Netns } from "../support/kernel/netns.js";
import { spawnBackground } from "../support/kernel/proc.js";
import { describeKernel } from "../support/kernel/suite.js";

function tsMs(e: Ev): number {
  return Date.parse(e.ts);
}

describeKernel("exec and exit", () => {
  it("100 runs of /bin/true: exactly 100 exec events with the shell as parent, 100 exits with code 0", async () => {
    const t0 = Date.now();
    const script = "i=0; while [ $i -lt 100 ]; do /bin/true; i=$((i+1)); done";
    const r = await agentRun({ cmd: ["/bin/sh", "-c", script] });
    const t1 = Date.now();
    expectRunOk(r);
    const sh = r.rootPid as number;

    const rootExec = byKind.exec(r.log.events).filter((e) => e.pid === sh);
    expect(rootExec).toHaveLength(1);
    expect(rootExec[0]).toMatchObject({
      filename: "/bin/sh",
      argv: ["/bin/sh", "-c", script],
      ppid: r.agentPid,
      uid: 0,
      comm: "sh",
    });

    const trues = byKind.exec(r.workload).filter((e) => e.filename === "/bin/true");
    expect(trues).toHaveLength(100);
    for (const e of trues) {
      expect(e).toMatchObject({ argv: ["/bin/true"], ppid: sh, uid: 0, comm: "true", v: 1 });
      expect(e.truncated ?? false).toBe(false);
      // the CI step (null outside CI) is inherited from the shell, whatever it is
      expect(e.step).toBe(rootExec[0]?.step);
    }
    const truePids = new Set(trues.map((e) => e.pid));
    expect(truePids.size).toBe(100);
    // nothing else was executed by the workload
    expect(byKind.exec(r.workload).filter((e) => e.pid !== sh && !truePids.has(e.pid))).toEqual([]);

    const exits = byKind.exit(r.log.events).filter((e) => truePids.has(e.pid));
    expect(exits).toHaveLength(100);
    expect(new Set(exits.map((e) => e.pid)).size).toBe(100);
    for (const x of exits) expect(x.code).toBe(0);
    // the shell itself exits 0 too, after its children
    const shExit = byKind.exit(r.log.events).filter((e) => e.pid === sh);
    expect(shExit.map((e) => e.code)).toEqual([0]);

    // timestamps: wall clock within the run, each exec before its own exit
    for (const e of [...trues, ...exits]) {
      expect(tsMs(e)).toBeGreaterThanOrEqual(t0 - 1000);
      expect(tsMs(e)).toBeLessThanOrEqual(t1 + 1000);
    }
    const execTs = new Map(trues.map((e) => [e.pid, e.ts]));
    for (const x of exits) expect(x.ts >= (execTs.get(x.pid) as string)).toBe(true);
  });

  it("exits with CMD's exit code and records it; a signal gives 128+signal", async () => {
    const r7 = await agentRun({ cmd: ["/bin/sh", "-c", "exit 7"] });
    expect(r7.res.code).toBe(7);
    expect(
      byKind
        .exit(r7.log.events)
        .filter((e) => e.pid === r7.rootPid)
        .map((e) => e.code),
    ).toEqual([7]);

    const r9 = await agentRun({ cmd: ["/bin/sh", "-c", "kill -9 $$"] });
    expect(r9.res.code).toBe(137);
    const x = byKind.exit(r9.log.events).filter((e) => e.pid === r9.rootPid);
    expect(x).toHaveLength(1);
    expect(x[0]?.code).toBe(137);
    if (x[0]?.signal !== undefined) expect(x[0].signal).toBe(9);
  });

  it("argv with arbitrary bytes (0xff, newline, quote, backslash, control, non-ASCII) is escaped into valid JSON that round-trips", async () => {
    const prog = [
      "import os",
      "args = [b'/bin/true', b'a\\xffb', b'line1\\nline2', b'q\"uote', b'back\\\\slash', b'tab\\tctl\\x01\\x7f', 'é€😀'.encode(), b'']",
      "os.execv(b'/bin/true', args)",
    ].join("\n");
    const r = await agentRun({ cmd: [PYTHON, "-c", prog] });
    expectRunOk(r);
    const ex = byKind.exec(r.workload).filter((e) => e.filename === "/bin/true");
    expect(ex).toHaveLength(1);
    const e = ex[0] as ExecEv;
    expect(e.pid).toBe(r.rootPid); // execv replaces python in place
    expect(e.argv).toHaveLength(8);
    // 0xff is not UTF-8: one code point stands for the byte, its neighbours survive
    expect(["a\u00ffb", "a\ufffdb"]).toContain(e.argv[1]);
    expect(e.argv.slice(2)).toEqual([
      "line1\nline2",
      'q"uote',
      "back\\slash",
      "tab\tctl\x01\x7f",
      "é€😀",
      "",
    ]);
    // the raw line is one line of JSON and re-serialises to the same object
    const idx = r.log.events.indexOf(e);
    const raw = r.log.lines[idx] as string;
    expect(raw.includes("\n")).toBe(false);
    expect(JSON.parse(JSON.stringify(JSON.parse(raw)))).toEqual(e);
  });

  it("long argv is cut at the bound with truncated: true, keeping an exact prefix", async () => {
    const args = Array.from({ length: 400 }, (_, i) => `arg-${String(i).padStart(5, "0")}`);
    const r = await agentRun({ cmd: ["/bin/true", ...args] });
    expectRunOk(r);
    const e = byKind.exec(r.log.events).find((x) => x.pid === r.rootPid) as ExecEv;
    expect(e.filename).toBe("/bin/true");
    expect(e.truncated).toBe(true);
    const full = ["/bin/true", ...args];
    expect(e.argv.length).toBeGreaterThan(10);
    expect(e.argv.length).toBeLessThan(full.length);
    const last = e.argv.length - 1;
    expect(e.argv.slice(0, last)).toEqual(full.slice(0, last));
    expect(full[last]?.startsWith(e.argv[last] as string)).toBe(true);
  });

  it("processes that fork and exit within a millisecond: events carry their own pid and the right ppid", async () => {
    const bin = await compileC(join(FIXTURES, "fork_fast.c"));
    const home = tempDir("home");
    mkdirSync(join(home, ".ssh"), { mode: 0o700 });
    const key = join(home, ".ssh", "id_rsa");
    writeFileSync(key, "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n", { mode: 0o600 });
    const ns = await Netns.create();
    const srv = spawnBackground(ns.exec(PYTHON, join(FIXTURES, "servers.py"), "tcp:127.0.0.1:0"));
    const port = (
      JSON.parse((await srv.waitForLine(/^READY /)).slice(6)) as Record<string, number>
    )["tcp:127.0.0.1:0"] as number;
    try {
      const N = 20;
      const r = await agentRun({ cmd: ns.exec(bin, String(N), "127.0.0.1", String(port), key) });
      expectRunOk(r);
      const parent = r.rootPid as number;
      const kids = [...r.res.stdout.matchAll(/^CHILD (\d+) GRANDCHILD (\d+) US (\d+)$/gm)].map(
        (m) => ({
          child: Number(m[1]),
          grandchild: Number(m[2]),
          us: Number(m[3]),
        }),
      );
      expect(kids).toHaveLength(N);
      console.log(`fork_fast child lifetimes (µs): ${kids.map((k) => k.us).join(" ")}`);
      const tree = subtree(r.log.events, parent);
      for (const k of kids) {
        const conn = byKind.connect(r.log.events).filter((e) => e.pid === k.child);
        expect(conn).toHaveLength(1);
        expect(conn[0]).toMatchObject({
          ppid: parent,
          comm: "fork_fast",
          proto: "tcp",
          family: "inet",
          addr: "127.0.0.1",
          port,
          result: 0,
        });
        const file = byKind.file(r.log.events).filter((e) => e.pid === k.grandchild);
        expect(file).toHaveLength(1);
        expect(file[0]).toMatchObject({ ppid: k.child, comm: "fork_fast", path: key });
        expect(file[0]?.rule).toBe("ssh-key");
        expect(
          byKind
            .exit(r.log.events)
            .filter((e) => e.pid === k.child)
            .map((e) => e.code),
        ).toEqual([3]);
        expect(
          byKind
            .exit(r.log.events)
            .filter((e) => e.pid === k.grandchild)
            .map((e) => e.code),
        ).toEqual([4]);
        // each event carries its ancestry, nearest first (DESIGN §2), even for these
        expect(
          ((file[0]?.ancestry ?? []) as Array<{ pid: number; comm: string }>).slice(0, 3),
        ).toEqual([
          { pid: k.child, comm: "fork_fast" },
          { pid: parent, comm: "fork_fast" },
          { pid: r.agentPid, comm: "dpndncy-agent" },
        ]);
        // a consumer rebuilds the tree from the log alone
        expect(tree.has(k.child) && tree.has(k.grandchild)).toBe(true);
      }
    } finally {
      await srv.stop();
    }
  });
});
