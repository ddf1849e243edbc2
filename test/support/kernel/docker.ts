// A real Docker daemon (Debian's docker.io) for the container tests, started and stopped by the
// test file itself and isolated from the host:
// - dockerd runs in a network namespace of the test (`nsenter --net`, not `ip netns exec`, which
//   remounts /sys and would hide the cgroup mounts from it); its bridges use documentation
//   ranges and the namespace has no route out, only a veth to a "hosts" namespace where the
//   test's servers and DNS listen (192.0.2.0/24);
// - its data root, exec root and API socket are in a temp dir of the test; containerd is its own
//   child (namespace `dpndncy-kt`), so nothing touches a system Docker;
// - dockerd itself runs in a cgroup the test made (`daemon`), and every container, `docker
//   build`'s included, below another (`docker`, the daemon's --cgroup-parent): enforcement only
//   ever applies to cgroups the test created;
// - the image is made offline: busybox-static + applet links, `docker import`.
// Cleanup removes containers, networks, the daemon, the cgroups (v1 hierarchies included: the
// cgroupfs driver makes the same directories there) and the data root.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { cgroup2Mount, type TestCgroup, testCgroup } from "./cgroup.js";
import { onCleanup, tempDir } from "./env.js";
import { Netns } from "./netns.js";
import { type Background, poll, run, runOk, sleep, spawnBackground } from "./proc.js";

export const DOCKER_CLI = existsSync("/usr/bin/docker") ? "/usr/bin/docker" : "docker";
export const IMAGE = "dpndncy-bb:test";
const APPLETS = [
  "sh",
  "echo",
  "cat",
  "nc",
  "nslookup",
  "sleep",
  "true",
  "awk",
  "tail",
  "head",
  "grep",
  "ls",
  "id",
];

export interface Dockerd {
  dir: string;
  sock: string;
  dataRoot: string;
  lab: Netns;
  hosts: Netns;
  cgroup: TestCgroup;
  /** cgroup of dockerd + containerd (runtime-cgroup) */
  daemonCg: string;
  /** parent of every container's cgroup (container-cgroup) */
  containersCg: string;
  /** argv prefix of the docker CLI talking to this daemon */
  cli: string[];
  bg: Background;
}

/** rmdir the directories under `rel` in every cgroup v1 hierarchy (cgroupfs driver copies). */
export function removeV1(rel: string): void {
  const base = "/sys/fs/cgroup";
  let ctrls: string[] = [];
  try {
    ctrls = readdirSync(base);
  } catch {
    return;
  }
  const rm = (d: string): void => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true }))
      if (e.isDirectory()) rm(join(d, e.name));
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(d);
        return;
      } catch {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
  };
  for (const c of ctrls) {
    const d = join(base, c, rel);
    if (join(base, c) !== cgroup2Mount() && existsSync(d)) rm(d);
  }
}

/** A busybox-static root filesystem (no registry, no network). */
function busyboxRoot(): string {
  const root = tempDir("bbroot");
  mkdirSync(join(root, "bin"), { recursive: true });
  for (const d of ["etc", "tmp", "root"]) mkdirSync(join(root, d), { recursive: true });
  copyFileSync("/bin/busybox", join(root, "bin/busybox"));
  for (const a of APPLETS) symlinkSync("busybox", join(root, "bin", a));
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  // a credential file for the file hook to see read inside a container
  mkdirSync(join(root, "root/.aws"), { recursive: true });
  writeFileSync(
    join(root, "root/.aws/credentials"),
    "[default]\naws_access_key_id = AKIAEXAMPLE\n",
  );
  return root;
}

export async function startDockerd(): Promise<Dockerd> {
  const dir = tempDir("dockerd");
  const sock = join(dir, "docker.sock");
  const dataRoot = join(dir, "root");
  const lab = await Netns.create();
  const hosts = await Netns.create();
  await lab.vethTo(hosts, ["192.0.2.1/24"], ["192.0.2.10/24", "192.0.2.20/24", "192.0.2.53/24"]);
  const cgroup = testCgroup("docker");
  const daemonCg = cgroup.child("daemon");
  const containersCg = cgroup.child("docker");
  const parentRel = containersCg.slice(cgroup2Mount().length); // "/dpndncy-kt-…/docker"
  // the cgroupfs driver makes <parent>/<id> in the v1 hierarchies too: removed after the v2 tree
  onCleanup(() => removeV1(parentRel.split("/").slice(0, 2).join("/")));
  const argv = [
    "/bin/sh",
    "-c",
    `echo $$ > '${daemonCg}/cgroup.procs' || exit 97; exec nsenter --net=/run/netns/${lab.name} "$@"`,
    "dockerd",
    "dockerd",
    "--data-root",
    dataRoot,
    "--exec-root",
    join(dir, "exec"),
    "--pidfile",
    join(dir, "dockerd.pid"),
    "-H",
    `unix://${sock}`,
    "--bip",
    "198.51.100.1/24",
    "--cgroup-parent",
    parentRel,
    "--exec-opt",
    "native.cgroupdriver=cgroupfs",
    "--storage-driver",
    "vfs",
    "--ip6tables=false",
    "--containerd-namespace",
    "dpndncy-kt",
    "--containerd-plugins-namespace",
    "dpndncy-kt-plugins",
    "--config-file",
    join(dir, "daemon.json"),
  ];
  writeFileSync(join(dir, "daemon.json"), "{}\n");
  const bg = spawnBackground(argv, { env: { ...process.env, DOCKER_BUILDKIT: "0" } });
  const cli = [DOCKER_CLI, "-H", `unix://${sock}`];
  const d: Dockerd = { dir, sock, dataRoot, lab, hosts, cgroup, daemonCg, containersCg, cli, bg };
  onCleanup(() => stopDockerd(d));
  const up = await poll(
    async () => (await run([...cli, "version", "--format", "{{.Server.Version}}"])).code === 0,
    30_000,
    200,
  );
  if (!up) throw new Error(`dockerd did not answer on ${sock}:\n${bg.stderr()}`);
  const root = busyboxRoot();
  await runOk(["/bin/sh", "-c", `tar -C '${root}' -c . | ${cli.join(" ")} import - ${IMAGE}`]);
  return d;
}

async function stopDockerd(d: Dockerd): Promise<void> {
  const ids = (await run([...d.cli, "ps", "-aq"])).stdout.split(/\s+/).filter(Boolean);
  if (ids.length) await run([...d.cli, "rm", "-f", ...ids]);
  let pid = 0;
  try {
    pid = Number(readFileSync(join(d.dir, "dockerd.pid"), "utf8").trim());
  } catch {}
  if (pid > 0) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {}
    for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(100);
  }
  await d.bg.stop();
  // anything of the daemon's still running (containerd, shims) goes with its cgroup (testCgroup)
  await run([
    "/bin/sh",
    "-c",
    `grep ' ${d.dir}' /proc/self/mounts | cut -d' ' -f2 | sort -r | xargs -r umount -l`,
  ]);
}

/** `docker …` against the test daemon, as argv (for agentRun's cmd). */
export function dockerArgv(d: Dockerd, ...args: string[]): string[] {
  return [...d.cli, ...args];
}

/** The agent config lines naming this daemon: judged cgroups, API socket, data root. */
export function dockerAgentConfig(d: Dockerd, judge = true): string {
  return [
    ...(judge ? [`container-cgroup ${d.containersCg}`, `runtime-cgroup ${d.daemonCg}`] : []),
    `runtime-socket ${d.sock}`,
    `docker-root ${d.dataRoot}`,
    "",
  ].join("\n");
}
