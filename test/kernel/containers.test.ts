// Containers (agent-c/records/containers.c): records of a process in a container's cgroup carry the
// container (runtime, id, Kubernetes pod) parsed from the cgroup path, and a libc inside a
// container's root filesystem (another inode than the host's) gets the getaddrinfo probes too.
//
// The cgroups are the test's own, under a parent it creates in the cgroup v2 mount and removes
// afterwards; real docker/kubepods cgroups are never touched. Some exist before the agent starts,
// some are made while it runs (a container started after the agent: attributed from its first
// record, the exec, on). The "container" of the libc test is
// a root filesystem with copies of the host's libc, run with its own mount namespace and root
// (`unshare --mount --root`) inside a network namespace where the test's DNS server answers.
import { randomBytes, randomUUID } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { expect, it } from "vitest";
import { type AgentRun, agentRun, expectRunOk } from "../support/kernel/agent.js";
import { cgroup2Mount } from "../support/kernel/cgroup.js";
import { onCleanup, tempDir } from "../support/kernel/env.js";
import { byKind, type Ev, type ExecEv } from "../support/kernel/log.js";
import { Netns } from "../support/kernel/netns.js";
import { runOk, sleep } from "../support/kernel/proc.js";
import { startDns, type Zone } from "../support/kernel/servers.js";
import { describeKernel } from "../support/kernel/suite.js";

const nonce = randomBytes(4).toString("hex");
const hex64 = () => randomBytes(32).toString("hex");
/** a BuildKit container id: 25 characters of base 36, lower case (moby's identity.NewID) */
const bk25 = () =>
  Array.from(randomBytes(25), (b) => "0123456789abcdefghijklmnopqrstuvwxyz"[b % 36]).join("");

interface Container {
  runtime: string;
  id: string;
  pod: string | null;
}

/** rmdir a cgroup tree, innermost first; a cgroup whose last process just exited may be busy a moment. */
async function removeCgroupTree(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) await removeCgroupTree(join(dir, e.name));
  }
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if (i >= 50) throw new Error(`cannot remove the test cgroup ${dir}: ${(e as Error).message}`);
      await sleep(100);
    }
  }
}

/** The records of the workload process named by `marker`, once it is in cgroup `cgid`. */
function recordsIn(r: AgentRun, marker: string, cgid: number): Ev[] {
  // the child's `sh -c '...' MARKER`: the marker is its last argument ($0)
  const ex = byKind.exec(r.workload).filter((e: ExecEv) => e.argv[e.argv.length - 1] === marker);
  expect(ex.length, `exec of the child for ${marker}`).toBeGreaterThanOrEqual(1);
  const pid = (ex[0] as ExecEv).pid;
  return r.workload.filter((e) => e.pid === pid && e.cgroup === cgid);
}

/** ldd's dependencies of a binary (absolute paths), the loader included. */
async function deps(bin: string): Promise<string[]> {
  const out = (await runOk(["ldd", bin])).stdout;
  const paths: string[] = [];
  for (const line of out.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) paths.push(m[1]);
  }
  return paths;
}

/** Copies host file `src` to the same path under `root` (a new inode: copyFileSync follows links). */
function copyIn(root: string, src: string, dest = src): void {
  mkdirSync(join(root, dirname(dest)), { recursive: true });
  copyFileSync(src, join(root, dest));
}

/**
 * A minimal root filesystem: sh, sleep and getent with COPIES of the host's libc and loader (and
 * the NSS modules), nsswitch "hosts: dns" and resolv.conf naming 127.0.0.1.
 */
async function containerRoot(): Promise<string> {
  const root = tempDir("ctroot");
  const bins: Record<string, string> = {
    "/bin/sh": realpathSync("/bin/sh"),
    "/bin/sleep": realpathSync("/bin/sleep"),
    "/bin/getent": realpathSync("/usr/bin/getent"),
  };
  const libs = new Set<string>();
  for (const [dest, src] of Object.entries(bins)) {
    copyIn(root, src, dest);
    for (const l of await deps(src)) libs.add(l);
  }
  const libc = [...libs].find((l) => /\/libc\.so\.6$/.test(l));
  if (!libc) throw new Error(`no libc.so.6 among the dependencies: ${[...libs].join(" ")}`);
  for (const n of ["libnss_dns.so.2", "libnss_files.so.2", "libresolv.so.2"]) {
    const p = join(dirname(libc), n);
    if (existsSync(p)) libs.add(p);
  }
  for (const l of libs) copyIn(root, l);
  mkdirSync(join(root, "etc"), { recursive: true });
  writeFileSync(join(root, "etc/nsswitch.conf"), "hosts: dns\n");
  writeFileSync(
    join(root, "etc/resolv.conf"),
    "nameserver 127.0.0.1\noptions timeout:2 attempts:1\n",
  );
  // the copy really is another file than the host's libc, so the start-time probes miss it
  const host = statSync(libc);
  const mine = statSync(join(root, libc));
  expect(`${mine.dev}:${mine.ino}`).not.toBe(`${host.dev}:${host.ino}`);
  return root;
}

describeKernel("containers", () => {
  it("records of processes in docker, containerd (Kubernetes pod), cri-o, podman and cgroupfs cgroups carry exactly their container; a plain cgroup none", async () => {
    const home = tempDir("home");
    mkdirSync(join(home, ".aws"), { recursive: true });
    writeFileSync(join(home, ".aws/credentials"), "[default]\naws_access_key_id = AKIAEXAMPLE\n");

    const parent = join(cgroup2Mount(), `dpndncy-kt-${process.pid}-${nonce}`);
    mkdirSync(parent);
    onCleanup(() => removeCgroupTree(parent));

    const uid1 = randomUUID();
    const uid2 = randomUUID();
    const uid3 = randomUUID();
    const uid4 = randomUUID();
    const ids = Array.from({ length: 10 }, hex64);
    const bk = Array.from({ length: 3 }, bk25);
    // late: made by the workload while the agent runs (a container started after the agent)
    const cases: { name: string; path: string; want: Container | null; late?: boolean }[] = [
      {
        name: "docker-systemd",
        path: `system.slice/docker-${ids[0]}.scope`,
        want: { runtime: "docker", id: ids[0] as string, pod: null },
      },
      {
        name: "k8s-containerd",
        path: `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid1.replaceAll("-", "_")}.slice/cri-containerd-${ids[1]}.scope`,
        want: { runtime: "containerd", id: ids[1] as string, pod: uid1 },
      },
      {
        name: "k8s-crio-guaranteed",
        path: `kubepods.slice/kubepods-pod${uid2.replaceAll("-", "_")}.slice/crio-${ids[2]}.scope`,
        want: { runtime: "cri-o", id: ids[2] as string, pod: uid2 },
      },
      {
        name: "podman",
        path: `machine.slice/libpod-${ids[3]}.scope`,
        want: { runtime: "podman", id: ids[3] as string, pod: null },
      },
      {
        name: "docker-cgroupfs",
        path: `docker/${ids[4]}`,
        want: { runtime: "docker", id: ids[4] as string, pod: null },
      },
      {
        name: "k8s-cgroupfs",
        path: `kubepods/besteffort/pod${uid3}/${ids[5]}`,
        want: { runtime: "kubernetes", id: ids[5] as string, pod: uid3 },
      },
      {
        // a cgroup the container made below its own (systemd in a container, nested runtimes)
        name: "docker-nested",
        path: `system.slice/docker-${ids[6]}.scope/inner`,
        want: { runtime: "docker", id: ids[6] as string, pod: null },
      },
      {
        name: "docker-late",
        path: `late/docker-${ids[8]}.scope`,
        want: { runtime: "docker", id: ids[8] as string, pod: null },
        late: true,
      },
      {
        name: "k8s-late",
        path: `late/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${uid4.replaceAll("-", "_")}.slice/cri-containerd-${ids[9]}.scope`,
        want: { runtime: "containerd", id: ids[9] as string, pod: uid4 },
        late: true,
      },
      {
        // dockerd's BuildKit RUN line: <cgroup parent>/buildkit/<id> (cgroupfs driver)
        name: "buildkit-cgroupfs",
        path: `docker/buildkit/${bk[0]}`,
        want: { runtime: "buildkit", id: bk[0] as string, pod: null },
      },
      {
        // the systemd driver: moby hands BuildKit "<slice>:docker:", so docker-<id>.scope
        name: "buildkit-systemd",
        path: `system.slice/docker-${bk[1]}.scope`,
        want: { runtime: "buildkit", id: bk[1] as string, pod: null },
      },
      { name: "plain", path: "plain", want: null },
      // BuildKit look-alikes: one character short, upper case
      { name: "buildkit-short", path: `bk/buildkit/${(bk[2] as string).slice(1)}`, want: null },
      {
        name: "buildkit-upper",
        path: `bk/buildkit/${(bk[2] as string).toUpperCase().replace(/^./, "A")}`,
        want: null,
      },
      // look-alikes that are not containers: conmon's scope, a short id
      { name: "crio-conmon", path: `crio-conmon-${ids[7]}.scope`, want: null },
      { name: "short-id", path: `docker-${(ids[7] as string).slice(1)}.scope`, want: null },
    ];
    for (const c of cases) if (!c.late) mkdirSync(join(parent, c.path), { recursive: true });
    // each child moves itself into its cgroup, then execs a reader of the fake credential
    const script = cases
      .map(
        (c) =>
          `${c.late ? `mkdir -p "${join(parent, c.path)}" && ` : ""}/bin/sh -c 'echo $$ > "${join(parent, c.path)}/cgroup.procs" && exec /bin/cat "$HOME/.aws/credentials"' ${c.name}-${nonce} >/dev/null`,
      )
      .join("\n");
    const r = await agentRun({
      cmd: ["/bin/sh", "-c", script],
      env: { ...process.env, HOME: home },
    });
    expectRunOk(r);

    const cgid = new Map(cases.map((c) => [c.name, statSync(join(parent, c.path)).ino]));
    const creds = join(home, ".aws/credentials");
    for (const c of cases) {
      const recs = recordsIn(r, `${c.name}-${nonce}`, cgid.get(c.name) as number);
      // in the cgroup: the exec of cat, its open of the credential, its exit
      expect(
        recs.map((e) => e.kind),
        `records of ${c.name} in its cgroup`,
      ).toEqual(expect.arrayContaining(["exec", "file", "exit"]));
      expect(
        byKind.file(recs).map((f) => `${f.rule} ${f.path}`),
        `the credential read in ${c.name}`,
      ).toEqual([`aws-credentials ${creds}`]);
      for (const e of recs) {
        if (c.want) expect(e.container, `${c.name}: ${e.kind} record`).toEqual(c.want);
        else
          expect(e, `${c.name}: ${e.kind} record has no container`).not.toHaveProperty("container");
      }
    }
    // everything else (the shell, the children before they moved) is where the agent is: in no
    // container, or in the one the tests themselves run in (a CI job in a container)
    const start = r.log.events.find((e) => e.kind === "agent" && e.event === "start");
    const outside = r.workload.filter((e) => ![...cgid.values()].includes(e.cgroup));
    expect(outside.length).toBeGreaterThan(0);
    for (const e of outside) {
      expect(e.cgroup, `${e.kind} record of pid ${e.pid} outside the test cgroups`).toBe(
        start?.cgroup,
      );
      if (start?.container === undefined) expect(e).not.toHaveProperty("container");
      else expect(e.container).toEqual(start.container);
    }
  });

  it("a libc inside a container's root filesystem (a copy: another inode) gets the getaddrinfo probes; with DPNDNCY_NO_CONTAINER_LIBC=1 it does not", async () => {
    const root = await containerRoot();
    const name = (label: string) => `${label}-${nonce}.dpndncy.test`;
    const zone: Zone = {
      [name("ct-on")]: { A: ["192.0.2.90", "192.0.2.91"], AAAA: ["2001:db8::90"] },
      [name("ct-off")]: { A: ["192.0.2.92"], AAAA: ["2001:db8::92"] },
    };
    const ns = await Netns.create();
    const dns = await startDns(ns, ["127.0.0.1", "::1"], zone);
    // own mount namespace + root: the shell is the first exec there, so the agent attaches to the
    // copied libc while it sleeps; getent's lookup comes after
    const inContainer = (n: string) =>
      ns.exec(
        "unshare",
        "--mount",
        `--root=${root}`,
        "/bin/sh",
        "-c",
        `sleep 1; exec /bin/getent ahosts ${n}`,
      );

    const lookups = (r: AgentRun, n: string) =>
      byKind.dns(r.log.events).filter((e) => e.name === n && r.workload.includes(e));

    const on = await agentRun({ cmd: inContainer(name("ct-on")) });
    expectRunOk(on);
    expect(on.res.stdout).toContain("192.0.2.90");
    expect(dns.queries()).toEqual(expect.arrayContaining([`udp ${name("ct-on")} A`]));
    const getent = byKind
      .exec(on.workload)
      .find((e) => e.filename === "/bin/getent" && e.argv.includes(name("ct-on")));
    expect(getent, "exec of getent in the container").toBeDefined();
    const libc = lookups(on, name("ct-on")).filter((e) => e.source === "libc");
    expect(libc, "libc dns events of the lookup in the container").toHaveLength(1);
    expect(libc[0]).toMatchObject({
      source: "libc",
      name: name("ct-on"),
      qtype: "ANY",
      comm: "getent",
      pid: getent?.pid,
    });
    expect([...new Set(libc[0]?.answers)].sort()).toEqual(
      ["192.0.2.90", "192.0.2.91", "2001:db8::90"].sort(),
    );

    // the same lookup with the feature off: the packet hook still sees it, the libc probe cannot
    const off = await agentRun({
      cmd: inContainer(name("ct-off")),
      env: { ...process.env, DPNDNCY_NO_CONTAINER_LIBC: "1" },
    });
    expectRunOk(off);
    expect(off.res.stdout).toContain("192.0.2.92");
    const offEvs = lookups(off, name("ct-off"));
    expect(
      offEvs.filter((e) => e.source === "libc"),
      "no libc probe without the feature",
    ).toEqual([]);
    expect(
      offEvs.filter((e) => e.source === "packet").length,
      "packet-level events",
    ).toBeGreaterThan(0);
  });

  it("two containers of one image (overlayfs mounts over the same lower layer) share one probed libc, and both lookups are libc events", async () => {
    const root = await containerRoot();
    const mnt = tempDir("ctovl");
    const name = (label: string) => `${label}-${nonce}.dpndncy.test`;
    const zone: Zone = {
      [name("ovl-a")]: { A: ["192.0.2.93"], AAAA: [] },
      [name("ovl-b")]: { A: ["192.0.2.94"], AAAA: [] },
    };
    const ns = await Netns.create();
    await startDns(ns, ["127.0.0.1", "::1"], zone);
    // in a private mount namespace (the mounts die with it): a tmpfs for the upper layers and two
    // overlayfs roots over the one lower layer, each run as its own container
    const container = (i: number, n: string) =>
      [
        `mkdir ${mnt}/u${i} ${mnt}/w${i} ${mnt}/m${i}`,
        `mount -t overlay dpk-ovl -o lowerdir=${root},upperdir=${mnt}/u${i},workdir=${mnt}/w${i} ${mnt}/m${i}`,
        `unshare --mount --root=${mnt}/m${i} /bin/sh -c 'sleep 1; exec /bin/getent ahosts ${n}' ctr-${i}`,
      ].join(" && ");
    const script = [
      `mount -t tmpfs dpk-tmp ${mnt}`,
      container(1, name("ovl-a")),
      container(2, name("ovl-b")),
    ].join(" && ");
    const r = await agentRun({
      cmd: ns.exec("unshare", "--mount", "/bin/sh", "-c", script),
      env: { ...process.env, DPNDNCY_DEBUG: "1" },
    });
    expectRunOk(r);
    const shells = [1, 2].map((i) => {
      // unshare execs the shell, which execs getent after its sleep: one pid
      const ex = byKind
        .exec(r.workload)
        .find((e) => e.filename === "/bin/sh" && e.argv[e.argv.length - 1] === `ctr-${i}`);
      expect(ex, `exec of the shell of container ${i}`).toBeDefined();
      return ex?.pid as number;
    });
    for (const [i, n] of [name("ovl-a"), name("ovl-b")].entries()) {
      const evs = byKind.dns(r.workload).filter((e) => e.name === n && e.source === "libc");
      expect(evs, `libc dns event of container ${i + 1}`).toHaveLength(1);
      expect(evs[0]).toMatchObject({ comm: "getent", pid: shells[i], answers: [zone[n]?.A?.[0]] });
    }
    // DPNDNCY_DEBUG names each libc the agent probed: the first container's only
    const probed = r.res.stderr
      .split("\n")
      .map((l) => /^container libc probed: \/proc\/(\d+)\/root\//.exec(l)?.[1])
      .filter((p) => p !== undefined && shells.includes(Number(p)));
    expect(probed, "container libcs probed").toEqual([String(shells[0])]);
  });
});
