// Rootful Podman (Debian's podman 4.3) for the container tests: no daemon, so nothing to start;
// every command gets private --root/--runroot/--tmpdir dirs of the test, the vfs storage driver,
// the cgroupfs manager (no systemd here) and a --cgroup-parent under a cgroup the test created,
// and runs inside a network namespace of the test (`nsenter --net`), where `--network host` is
// that namespace. Explicit ulimits: podman's default RLIMIT_NOFILE needs CAP_SYS_RESOURCE,
// which this machine's bounding set lacks. Cleanup removes containers, images, the storage
// (and any mount under it) and the cgroups.
import { copyFileSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { cgroup2Mount, testCgroup } from "./cgroup.js";
import { removeV1 } from "./docker.js";
import { onCleanup, tempDir } from "./env.js";
import type { Netns } from "./netns.js";
import { run, runOk } from "./proc.js";

export const PODMAN_IMAGE = "localhost/dpndncy-bb:test";

export interface Podman {
  /** argv prefix: podman with the private storage, in the namespace */
  cli: string[];
  /** flags every `podman run` of the tests needs */
  runFlags: string[];
  /** parent of the containers' cgroups (container-cgroup) */
  containersCg: string;
}

export async function setupPodman(ns: Netns): Promise<Podman> {
  const dir = tempDir("podman");
  const cg = testCgroup("podman");
  const containersCg = cg.child("libpod_parent");
  const parentRel = containersCg.slice(cgroup2Mount().length);
  // the cgroupfs manager makes the same directories in the v1 hierarchies: removed after v2's
  onCleanup(() => removeV1(parentRel.split("/").slice(0, 2).join("/")));
  const base = [
    "podman",
    "--root",
    join(dir, "root"),
    "--runroot",
    join(dir, "run"),
    "--tmpdir",
    join(dir, "tmp"),
    "--storage-driver",
    "vfs",
    "--cgroup-manager",
    "cgroupfs",
    "--events-backend",
    "file",
    "--network-backend",
    "cni",
  ];
  const cli = ["nsenter", `--net=/run/netns/${ns.name}`, ...base];
  onCleanup(async () => {
    await run([...cli, "rm", "-af"]);
    await run([...cli, "rmi", "-af"]);
    await run([
      "/bin/sh",
      "-c",
      `grep ' ${dir}' /proc/self/mounts | cut -d' ' -f2 | sort -r | xargs -r umount -l`,
    ]);
  });
  const root = tempDir("pbbroot");
  mkdirSync(join(root, "bin"), { recursive: true });
  mkdirSync(join(root, "root/.aws"), { recursive: true });
  copyFileSync("/bin/busybox", join(root, "bin/busybox"));
  for (const a of ["sh", "nc", "cat", "echo", "sleep"])
    symlinkSync("busybox", join(root, "bin", a));
  await runOk([
    "/bin/sh",
    "-c",
    `tar -C '${root}' -c . | ${cli.join(" ")} import - ${PODMAN_IMAGE}`,
  ]);
  return {
    cli,
    containersCg,
    runFlags: [
      "--rm",
      "--network",
      "host",
      "--cgroup-parent",
      parentRel,
      "--ulimit",
      "nofile=1024:1024",
      "--ulimit",
      "nproc=4096:4096",
    ],
  };
}
