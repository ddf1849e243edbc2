// A machine where nothing the agent needs is mounted — no cgroup v2 (CI machines with only v1
// controllers), no bpffs, no tracefs: the agent mounts what it needs, still gets its best
// hooks, and unmounts exactly what it mounted. Run in a private mount namespace so the host's
// mounts are never touched.
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { AGENT, FIXTURES, onCleanup, PYTHON, tempDir } from "../support/kernel/env.js";
import type { AgentEv } from "../support/kernel/log.js";
import { byKind, readLog } from "../support/kernel/log.js";
import { Netns } from "../support/kernel/netns.js";
import { inPrivateMounts, keyedLine, poll, run, spawnBackground } from "../support/kernel/proc.js";
import { startServers } from "../support/kernel/servers.js";
import { describeKernel } from "../support/kernel/suite.js";
import { leaksSettled, snapshot } from "../support/kernel/sysstate.js";

const MOUNTS = `awk '$0 ~ / - (cgroup2|bpf|tracefs|debugfs) / {print $5}' /proc/self/mountinfo | sort`;

describeKernel("mounts", () => {
  it("without cgroup v2, bpffs and tracefs mounted: mounts them, attaches the cgroup hooks, unmounts them after", async () => {
    const ns = await Netns.create();
    const p = await startServers(ns, ["tcp:127.0.0.1:0"]);
    const port = p["tcp:127.0.0.1:0"] as number;
    const logPath = join(tempDir("mnt"), "events.ndjson");
    const before = await snapshot();
    const script = [
      "set -e",
      // unmount every cgroup2, bpffs, tracefs and debugfs mount (innermost first)
      `for m in $(${MOUNTS} | sort -r); do umount -l "$m"; done`,
      `echo "BEFORE $(${MOUNTS} | tr "\\n" " ")"`,
      `${AGENT} run --log ${logPath} -- ${ns.exec(PYTHON, join(FIXTURES, "netclient.py"), `tcp:127.0.0.1:${port}`).join(" ")}`,
      `echo "AFTER $(${MOUNTS} | tr "\\n" " ")"`,
      // nor a directory it made for them (the private cgroup2 mount point, marker files)
      `echo "RUN $(ls -d /run/dpndncy* 2>/dev/null | grep -v kernel-tests.lock | tr "\\n" " ")"`,
    ].join("\n");
    const r = await run(inPrivateMounts(script));
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/^BEFORE\s*$/m); // really nothing mounted
    expect(r.stdout).toMatch(/^AFTER\s*$/m); // and nothing left mounted
    expect(r.stdout).toMatch(/^RUN\s*$/m); // nor left under /run
    const log = readLog(logPath);
    expect(log.errors).toEqual([]);
    const start = log.events.find((e) => e.kind === "agent" && e.event === "start") as AgentEv;
    expect(start.attach?.connect).toMatch(/^cgroup\//);
    const conns = byKind.connect(log.events).filter((e) => e.port === port && e.comm === "python3");
    expect(conns.map((e) => `${e.proto} ${e.addr} ${e.port} ${e.result}`)).toEqual([
      `tcp 127.0.0.1 ${port} 0`,
    ]);
    expect(conns[0]?.cgroup).toBeGreaterThan(0);
    expect(await leaksSettled(before)).toEqual([]);
  });

  it("two agents: the one that mounted hands its mounts to the one still running, the last out unmounts", async () => {
    const dir = tempDir("mnt2");
    const a = join(dir, "a");
    const b = join(dir, "b");
    const script = [
      "set -e",
      `for m in $(${MOUNTS} | sort -r); do umount -l "$m"; done`,
      `${AGENT} start --log ${a}.ndjson --state-dir ${a} >/dev/null`, // mounts what is missing
      `echo "A $(${MOUNTS} | tr "\\n" " ")"`,
      `${AGENT} start --log ${b}.ndjson --state-dir ${b} >/dev/null`, // finds it all mounted
      `${AGENT} stop --state-dir ${a} >/dev/null`, // B still runs: nothing unmounted
      `echo "AFTER_A $(${MOUNTS} | tr "\\n" " ")"`,
      `${AGENT} status --state-dir ${b} | grep -q '"running":true'`,
      `${AGENT} stop --state-dir ${b} >/dev/null`, // last out
      `echo "AFTER_B $(${MOUNTS} | tr "\\n" " ")"`,
    ].join("\n");
    const r = await run(inPrivateMounts(script));
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const line = (k: string) => keyedLine(r.stdout, k);
    expect(line("A")).toMatch(/\/sys\/kernel\/tracing/);
    expect(line("AFTER_A")).toBe(line("A"));
    expect(line("AFTER_B")).toBe("");
    for (const f of [`${a}.ndjson`, `${b}.ndjson`]) {
      expect(readLog(f).events.at(-1)).toMatchObject({
        kind: "agent",
        event: "stop",
        complete: true,
      });
    }
  });

  it("an agent of another mount namespace does not keep this one's mounts: the last agent out here unmounts and leaves no marker", async () => {
    const dir = tempDir("mnt4");
    const a = join(dir, "a");
    // agent A runs in a mount namespace of its own, all through B's run in this one
    const holdA = [
      `for m in $(${MOUNTS} | sort -r); do umount -l "$m"; done`,
      `${AGENT} start --log ${a}.ndjson --state-dir ${a} >/dev/null || exit 1`,
      `echo started > ${dir}/a-up`,
      `while [ ! -e ${dir}/a-stop ]; do sleep 0.1; done`,
      `${AGENT} stop --state-dir ${a} >/dev/null`,
    ].join("\n");
    const bgA = spawnBackground(inPrivateMounts(holdA));
    onCleanup(async () => {
      writeFileSync(join(dir, "a-stop"), "");
      await poll(() => bgA.child.exitCode !== null, 20_000);
    });
    expect(await poll(() => existsSync(join(dir, "a-up")), 20_000), bgA.stderr()).toBe(true);
    const script = [
      "set -e",
      `for m in $(${MOUNTS} | sort -r); do umount -l "$m"; done`,
      `${AGENT} run --log ${dir}/b.ndjson -- true`,
      `echo "AFTER $(${MOUNTS} | tr "\n" " ")"`,
      `echo "NS $(stat -L -c %i /proc/self/ns/mnt)"`,
      `echo "MARKER $(ls /run/dpndncy-mounts 2>/dev/null | grep "^$(stat -L -c %i /proc/self/ns/mnt)-" | tr "\n" " ")"`,
    ].join("\n");
    const r = await run(inPrivateMounts(script));
    // a marker left for this namespace (the bug this guards against) outlives it in /run
    const ns = keyedLine(r.stdout, "NS");
    onCleanup(() => {
      if (!/^\d+$/.test(ns) || !existsSync("/run/dpndncy-mounts")) return;
      for (const f of readdirSync("/run/dpndncy-mounts"))
        if (f.startsWith(`${ns}-`)) rmSync(join("/run/dpndncy-mounts", f), { force: true });
      if (readdirSync("/run/dpndncy-mounts").length === 0)
        rmSync("/run/dpndncy-mounts", { recursive: true });
    });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(keyedLine(r.stdout, "AFTER"), r.stdout).toBe(""); // A (elsewhere) did not keep them
    expect(keyedLine(r.stdout, "MARKER"), r.stdout).toBe("");
    writeFileSync(join(dir, "a-stop"), "");
    expect(await poll(() => bgA.child.exitCode !== null, 20_000)).toBe(true);
    expect(bgA.child.exitCode, bgA.stderr()).toBe(0);
  });

  it("an agent SIGKILLed after mounting: its mounts are not leaked, the next agent out removes them; a mount replaced meanwhile is left alone", async () => {
    const dir = tempDir("mnt3");
    const script = [
      "set -e",
      `for m in $(${MOUNTS} | sort -r); do umount -l "$m"; done`,
      `${AGENT} run --log ${dir}/a.ndjson -- sleep 30 &`,
      "agent=$!",
      // armed once its start record is written
      `for i in $(seq 200); do grep -q '"event":"start"' ${dir}/a.ndjson 2>/dev/null && break; sleep 0.05; done`,
      'kill -9 "$agent"; pkill -9 -P "$agent" sleep || true; wait "$agent" || true',
      `echo "KILLED $(${MOUNTS} | tr "\n" " ")"`,
      `${AGENT} run --log ${dir}/b.ndjson -- true`,
      `echo "AFTER $(${MOUNTS} | tr "\n" " ")"`,
      // the same, but tracefs is unmounted and mounted again by someone else before the next agent
      `${AGENT} run --log ${dir}/c.ndjson -- sleep 30 &`,
      "agent=$!",
      `for i in $(seq 200); do grep -q '"event":"start"' ${dir}/c.ndjson 2>/dev/null && break; sleep 0.05; done`,
      'kill -9 "$agent"; pkill -9 -P "$agent" sleep || true; wait "$agent" || true',
      "umount -l /sys/kernel/tracing; mount -t tracefs someone-else /sys/kernel/tracing",
      `${AGENT} run --log ${dir}/d.ndjson -- true`,
      `echo "REPLACED $(${MOUNTS} | tr "\n" " ")"`,
      "umount -l /sys/kernel/tracing",
    ].join("\n");
    const r = await run(inPrivateMounts(script));
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const line = (k: string) => keyedLine(r.stdout, k);
    expect(line("KILLED")).toMatch(/\/sys\/kernel\/tracing/); // the killed agent could not clean up
    expect(line("AFTER"), r.stdout).toBe(""); // the next agent did
    // its tracefs was replaced by another: the next agent leaves that one (and its own cgroup2 goes)
    expect(line("REPLACED"), r.stdout).toBe("/sys/kernel/tracing");
  });
});
