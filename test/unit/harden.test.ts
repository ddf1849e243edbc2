// src/harden: the sudoers drop-in, the Docker socket and the restore record, against an
// in-memory system (the real one is exercised in test/kernel/harden.test.ts).
import { describe, expect, it } from "vitest";
import {
  DROP_IN_NAME,
  HardenError,
  type HardenSys,
  harden,
  installAgent,
  restoreHarden,
  rootOnlyPath,
  type StatInfo,
  sudoersDropIn,
} from "../../src/harden/index.js";

interface Fake extends HardenSys {
  files: Map<string, { data: string; st: StatInfo }>;
  calls: string[][];
}

function fakeSys(opts: { visudoOk?: boolean; sudoDenies?: boolean; groups?: string } = {}): Fake {
  const files = new Map<string, { data: string; st: StatInfo }>();
  const calls: string[][] = [];
  const dir = (mode = 0o755, uid = 0): { data: string; st: StatInfo } => ({
    data: "",
    st: { uid, gid: 0, mode, isDirectory: true },
  });
  for (const d of [
    "/",
    "/etc",
    "/etc/sudoers.d",
    "/var",
    "/var/run",
    "/var/lib",
    "/usr",
    "/usr/local",
    "/usr/local/lib",
  ])
    files.set(d, dir());
  files.set("/var/run/docker.sock", {
    data: "",
    st: { uid: 0, gid: 999, mode: 0o660, isDirectory: false },
  });
  files.set("/tmp", dir(0o1777));
  files.set("/home", dir());
  files.set("/home/runner", dir(0o755, 1001));
  files.set("/home/runner/agent", {
    data: "ELF",
    st: { uid: 1001, gid: 1001, mode: 0o755, isDirectory: false },
  });
  return {
    files,
    calls,
    readFile: (p) => files.get(p)?.data,
    writeFile: (p, data, mode) => {
      files.set(p, { data, st: { uid: 0, gid: 0, mode, isDirectory: false } });
    },
    remove: (p) => {
      files.delete(p);
    },
    stat: (p) => files.get(p)?.st,
    chown: (p, uid, gid) => {
      const f = files.get(p);
      if (f) f.st = { ...f.st, uid, gid };
    },
    chmod: (p, mode) => {
      const f = files.get(p);
      if (f) f.st = { ...f.st, mode };
    },
    mkdir: (p, mode) => {
      if (!files.has(p)) files.set(p, dir(mode));
    },
    copyFile: (src, dst, mode) => {
      files.set(dst, {
        data: files.get(src)?.data ?? "",
        st: { uid: 0, gid: 0, mode, isDirectory: false },
      });
    },
    run: (argv) => {
      calls.push(argv);
      if (argv[0] === "visudo")
        return { code: opts.visudoOk === false ? 1 : 0, stdout: "", stderr: "syntax error" };
      if (argv[0] === "id")
        return { code: 0, stdout: `${opts.groups ?? "runner docker"}\n`, stderr: "" };
      if (argv[0] === "sudo") {
        const cmd = argv.slice(5).join(" ");
        const allowed = !(opts.sudoDenies ?? true) || cmd !== "/usr/bin/true";
        return { code: allowed ? 0 : 1, stdout: "", stderr: "" };
      }
      return { code: 0, stdout: "", stderr: "" };
    },
    uidOf: (u) => (u === "root" ? 0 : u === "runner" ? 1001 : undefined),
  };
}

describe("sudoersDropIn", () => {
  it("denies everything, then allows exactly the listed commands (last match wins)", () => {
    expect(
      sudoersDropIn("runner", [
        ["/usr/local/lib/dpndncy/dpndncy-agent", "stop", "--state-dir", "/run/dpndncy/1"],
      ]),
    ).toBe(
      "# written by dpndncy harden: later steps of this job lose sudo.\n" +
        "# sudo applies the last matching rule; this file sorts last in sudoers.d.\n" +
        "runner ALL=(ALL:ALL) !ALL\n" +
        "runner ALL=(root) NOPASSWD: /usr/local/lib/dpndncy/dpndncy-agent stop --state-dir /run/dpndncy/1\n",
    );
  });
  it("refuses names and arguments sudoers would interpret", () => {
    expect(() => sudoersDropIn("bad user", [])).toThrow(HardenError);
    expect(() => sudoersDropIn("runner", [["relative", "x"]])).toThrow(/absolute path/);
    expect(() => sudoersDropIn("runner", [["/bin/x", "a,b"]])).toThrow(/interpret/);
    expect(() => sudoersDropIn("runner", [["/bin/x", "ALL=(root)"]])).toThrow(/interpret/);
  });
  it("the drop-in's name has no dot (sudo would skip it) and sorts last", () => {
    expect(DROP_IN_NAME).not.toContain(".");
    expect(["runner", "90-cloud-init-users", "README", DROP_IN_NAME].sort().at(-1)).toBe(
      DROP_IN_NAME,
    );
  });
});

describe("harden / restoreHarden", () => {
  it("sudo: validates with visudo first, writes the drop-in 0440 and a record, verifies with sudo -l", () => {
    const s = fakeSys();
    const r = harden(s, { user: "runner", level: "sudo", recordPath: "/var/lib/dpndncy/h.json" });
    expect(r.sudoDenied).toBe(true);
    const f = s.files.get(`/etc/sudoers.d/${DROP_IN_NAME}`);
    expect(f?.st.mode).toBe(0o440);
    expect(f?.data).toContain("runner ALL=(ALL:ALL) !ALL");
    expect(s.calls[0]).toEqual(["visudo", "-c", "-q", "-f", `/etc/sudoers.d/.${DROP_IN_NAME}.tmp`]);
    expect(s.files.has(`/etc/sudoers.d/.${DROP_IN_NAME}.tmp`)).toBe(false);
    expect(s.calls).toContainEqual(["sudo", "-n", "-l", "-U", "runner", "/usr/bin/true"]);
    // sudo only: the socket is untouched
    expect(s.files.get("/var/run/docker.sock")?.st).toMatchObject({ gid: 999, mode: 0o660 });
    restoreHarden(s, r.recordPath);
    expect(s.files.has(`/etc/sudoers.d/${DROP_IN_NAME}`)).toBe(false);
    expect(s.files.has(r.recordPath)).toBe(false);
  });

  it("a drop-in visudo rejects never takes effect", () => {
    const s = fakeSys({ visudoOk: false });
    expect(() => harden(s, { user: "runner", level: "sudo" })).toThrow(/visudo rejected/);
    expect([...s.files.keys()].filter((k) => k.includes(DROP_IN_NAME))).toEqual([]);
  });

  it("refuses root and unknown users", () => {
    expect(() => harden(fakeSys(), { user: "root", level: "sudo" })).toThrow(
      /refusing to harden root/,
    );
    expect(() => harden(fakeSys(), { user: "nobody2", level: "sudo" })).toThrow(/no user/);
  });

  it("reports when sudo still allows the user (e.g. a rule after the includedir)", () => {
    const r = harden(fakeSys({ sudoDenies: false }), { user: "runner", level: "sudo" });
    expect(r.sudoDenied).toBe(false);
    expect(r.notes.join()).toMatch(/still allows/);
  });

  it("containers: socket to root:root 0660, user out of the docker group; restore puts both back", () => {
    const s = fakeSys();
    const r = harden(s, {
      user: "runner",
      level: "sudo-and-containers",
      recordPath: "/var/lib/dpndncy/h.json",
    });
    expect(s.files.get("/var/run/docker.sock")?.st).toMatchObject({ uid: 0, gid: 0, mode: 0o660 });
    expect(s.calls).toContainEqual(["gpasswd", "-d", "runner", "docker"]);
    expect(r.record).toMatchObject({
      socket: { gid: 999, mode: 0o660 },
      removedFromGroup: "docker",
    });
    restoreHarden(s, r.recordPath);
    expect(s.files.get("/var/run/docker.sock")?.st).toMatchObject({
      uid: 0,
      gid: 999,
      mode: 0o660,
    });
    expect(s.calls).toContainEqual(["gpasswd", "-a", "runner", "docker"]);
  });

  it("the agent is copied to a root-owned directory; a user-writable one is refused", () => {
    const s = fakeSys();
    const dst = installAgent(s, "/home/runner/agent", "/usr/local/lib/dpndncy");
    expect(dst).toBe("/usr/local/lib/dpndncy/dpndncy-agent");
    expect(s.files.get(dst)?.st).toMatchObject({ uid: 0, mode: 0o755 });
    expect(rootOnlyPath(s, "/home/runner")).toMatch(/not owned by root/);
    expect(rootOnlyPath(s, "/tmp")).toMatch(/writable/);
    expect(() => installAgent(s, "/home/runner/agent", "/home/runner/bin")).toThrow(
      /not owned by root/,
    );
  });
});
