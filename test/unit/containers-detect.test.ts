// Which containers enforce mode judges by default (src/agent/runtimes.ts), over made-up hosts:
// the /proc entries, config files and cgroup directories a real runtime leaves.
import { describe, expect, it } from "vitest";
import {
  containerJudging,
  containerResolvers,
  detectRuntimes,
  type HostView,
  slicePath,
} from "../../src/agent/runtimes.js";

interface Proc {
  comm: string;
  argv: string[];
  cgroup: string;
}

function host(o: {
  procs?: Record<string, Proc>;
  files?: Record<string, string>;
  dirs?: string[];
}) {
  const files: Record<string, string> = {
    "/proc/self/mounts": "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n",
    ...o.files,
  };
  for (const [pid, p] of Object.entries(o.procs ?? {})) {
    files[`/proc/${pid}/comm`] = `${p.comm}\n`;
    files[`/proc/${pid}/cmdline`] = `${p.argv.join("\0")}\0`;
    files[`/proc/${pid}/cgroup`] = `0::${p.cgroup}\n`;
  }
  const dirs = new Set(o.dirs ?? []);
  const h: HostView = {
    read: (p) => files[p],
    list: (d) => (d === "/proc" ? ["self", "1", ...Object.keys(o.procs ?? {})] : []),
    isDir: (p) => dirs.has(p),
    exists: (p) => dirs.has(p) || p in files,
  };
  return h;
}

/** A GitHub-hosted runner as it is: systemd, Docker with the systemd driver, socket-activated,
 * the system containerd apart, systemd-resolved's stub in /etc/resolv.conf. */
const hosted = () =>
  host({
    procs: {
      "812": {
        comm: "containerd",
        argv: ["/usr/bin/containerd"],
        cgroup: "/system.slice/containerd.service",
      },
      "901": {
        comm: "dockerd",
        argv: ["/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"],
        cgroup: "/system.slice/docker.service",
      },
    },
    files: {
      "/etc/resolv.conf": "nameserver 127.0.0.53\noptions edns0 trust-ad\n",
      "/run/systemd/resolve/resolv.conf": "nameserver 168.63.129.16\n",
    },
    dirs: ["/run/systemd/system", "/sys/fs/cgroup/system.slice"],
  });

const HOSTED_ENV = { GITHUB_ACTIONS: "true", RUNNER_ENVIRONMENT: "github-hosted" };
const NONE = { containerCgroups: [], containerSlices: [], runtimeCgroups: [] };

describe("detectRuntimes", () => {
  it("a GitHub-hosted runner: Docker's scopes in system.slice, dockerd's and containerd's services, the socket-activated API socket", () => {
    const L = detectRuntimes(hosted());
    expect(L.containerSlices).toEqual(["/system.slice"]);
    expect(L.containerCgroups).toEqual([]);
    expect(L.runtimeCgroups).toEqual([
      "/system.slice/docker.service",
      "/system.slice/containerd.service",
    ]);
    expect(L.runtimeSockets).toEqual(["/run/docker.sock", "/var/run/docker.sock"]);
    expect(L.notJudged).toEqual([]);
    expect(L.found[0]).toMatch(/^docker \(dockerd 901, systemd driver\)/);
  });

  it("the cgroupfs driver: the cgroup-parent and data root of daemon.json (or --config-file), the unix socket of -H", () => {
    const h = host({
      procs: {
        "50": {
          comm: "dockerd",
          argv: [
            "dockerd",
            "--config-file=/etc/d.json",
            "-H",
            "unix:///tmp/d.sock",
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
          ],
          cgroup: "/ci/daemon",
        },
      },
      files: { "/etc/d.json": '{"cgroup-parent": "/ci/containers", "data-root": "/srv/docker"}' },
      dirs: ["/run/systemd/system", "/sys/fs/cgroup/ci/containers"],
    });
    const L = detectRuntimes(h);
    expect(L.containerCgroups).toEqual(["/ci/containers"]);
    expect(L.containerSlices).toEqual([]);
    expect(L.runtimeCgroups).toEqual(["/ci/daemon"]);
    expect(L.runtimeSockets).toEqual(["/tmp/d.sock"]);
    expect(L.dockerRoot).toBe("/srv/docker");
    expect(L.notJudged).toEqual([]);
  });

  it("what cannot be judged is said, never dropped: a parent that does not exist yet, a daemon in the root cgroup, a TCP listener, podman without systemd", () => {
    const h = host({
      procs: {
        "7": { comm: "dockerd", argv: ["dockerd", "-H", "tcp://0.0.0.0:2375"], cgroup: "/" },
      },
      files: { "/usr/bin/podman": "" },
      // cgroup v2 but no systemd: the cgroupfs driver, default parent /docker (not made yet)
    });
    const L = detectRuntimes(h);
    expect(L.containerCgroups).toEqual([]);
    expect(L.runtimeCgroups).toEqual([]);
    expect(L.notJudged.join("\n")).toMatch(/\/docker does not exist yet/);
    expect(L.notJudged.join("\n")).toMatch(/runs in the cgroup v2 root: its pulls are not judged/);
    expect(L.notJudged.join("\n")).toMatch(/listens on tcp:\/\/0\.0\.0\.0:2375/);
    expect(L.notJudged.join("\n")).toMatch(/podman \(cgroupfs manager\)/);
  });

  it("dockerd installed but not yet running (docker.socket starts it at the first use): its containers' slice is judged from its config, and that its pulls are not is said", () => {
    const h = host({
      procs: {
        "812": {
          comm: "containerd",
          argv: ["/usr/bin/containerd"],
          cgroup: "/system.slice/containerd.service",
        },
      },
      files: { "/usr/bin/dockerd": "" },
      dirs: ["/run/systemd/system", "/sys/fs/cgroup/system.slice"],
    });
    const L = detectRuntimes(h);
    expect(L.containerSlices).toEqual(["/system.slice"]);
    expect(L.runtimeCgroups).toEqual(["/system.slice/containerd.service"]);
    expect(L.found[0]).toMatch(/^docker \(dockerd \(not running\), systemd driver\)/);
    expect(L.notJudged).toEqual([
      expect.stringMatching(/^dockerd is installed but not running: .*image pulls/),
    ]);
  });

  it("a rootless dockerd (the host sees the user's uid) is said not to be judged, and nothing of it is named", () => {
    const h = host({
      procs: {
        "40": {
          comm: "dockerd",
          argv: ["dockerd", "-H", "unix:///run/user/1001/docker.sock"],
          cgroup: "/user.slice/user-1001.slice/user@1001.service/app.slice/docker.service",
        },
      },
      files: { "/proc/40/status": "Name:\tdockerd\nUid:\t1001\t1001\t1001\t1001\n" },
      dirs: ["/run/systemd/system", "/sys/fs/cgroup/system.slice"],
    });
    const L = detectRuntimes(h);
    expect(L.containerSlices).toEqual([]);
    expect(L.runtimeCgroups).toEqual([]);
    expect(L.runtimeSockets).toEqual([]);
    expect(L.notJudged).toEqual([
      "dockerd 40 is rootless (uid 1001): its containers are not judged (docs/containers.md)",
    ]);
  });

  it("systemd slice names expand as systemd does; anything else is refused", () => {
    expect(slicePath("system.slice")).toBe("/system.slice");
    expect(slicePath("ci-docker.slice")).toBe("/ci.slice/ci-docker.slice");
    for (const bad of ["-.slice", "docker", "a--b.slice", "../x.slice", "a/b.slice"])
      expect(slicePath(bad), bad).toBeUndefined();
  });

  it("containers get systemd-resolved's upstreams when the host's resolvers are only its loopback stub", () => {
    expect(containerResolvers(hosted())).toEqual(["127.0.0.53", "168.63.129.16"]);
    const plain = host({ files: { "/etc/resolv.conf": "nameserver 10.0.0.2\n" } });
    expect(containerResolvers(plain)).toEqual(["10.0.0.2"]);
  });
});

describe("containerJudging", () => {
  it("enforce on a GitHub-hosted runner: on by default, with the containers' resolvers sanctioned", () => {
    const j = containerJudging({
      choice: "auto",
      enforce: true,
      env: HOSTED_ENV,
      explicit: { ...NONE, containerCgroups: ["/extra"] },
      policyResolvers: [],
      host: hosted(),
    });
    expect(j.config).toEqual({
      containerCgroups: ["/extra"],
      containerSlices: ["/system.slice"],
      runtimeCgroups: ["/system.slice/docker.service", "/system.slice/containerd.service"],
      runtimeSockets: ["/run/docker.sock", "/var/run/docker.sock"],
      dnsResolvers: ["127.0.0.53", "168.63.129.16"],
    });
    expect(j.info[0]).toMatch(
      /judged by the job's policy \(GitHub-hosted runner.*`containers: off` to opt out/,
    );
    expect(j.warnings).toEqual([]);
  });

  it("only the three lists are taken from a wider object (the action's inputs): nothing else of it reaches the agent config", () => {
    const j = containerJudging({
      choice: "off",
      enforce: true,
      env: HOSTED_ENV,
      explicit: { ...NONE, sensitivePaths: ["/x"], mode: "enforce" } as typeof NONE,
      policyResolvers: [],
      host: hosted(),
    });
    expect(j.config).toEqual(NONE);
  });

  it("a policy that names its resolvers keeps them", () => {
    const j = containerJudging({
      choice: "auto",
      enforce: true,
      env: HOSTED_ENV,
      explicit: NONE,
      policyResolvers: ["10.1.1.1"],
      host: hosted(),
    });
    expect(j.config.dnsResolvers).toBeUndefined();
  });

  it("off, or auto where the host may run other jobs: only what the user named, and auto says so", () => {
    for (const [choice, env] of [
      ["off", HOSTED_ENV],
      ["auto", { GITHUB_ACTIONS: "true", RUNNER_ENVIRONMENT: "self-hosted" }],
      ["auto", { GITLAB_CI: "true" }],
    ] as const) {
      const j = containerJudging({
        choice,
        enforce: true,
        env,
        explicit: { ...NONE, runtimeCgroups: ["/rt"] },
        policyResolvers: [],
        host: hosted(),
      });
      expect(j.config, `${choice} ${JSON.stringify(env)}`).toEqual({
        ...NONE,
        runtimeCgroups: ["/rt"],
      });
      if (choice === "auto") expect(j.info.join("\n")).toMatch(/not judged unless named/);
    }
  });

  it("on: the user vouches for a single-job host; observe mode gets only the sockets and data root (attribution)", () => {
    const on = containerJudging({
      choice: "on",
      enforce: true,
      env: {},
      explicit: NONE,
      policyResolvers: [],
      host: hosted(),
    });
    expect(on.config.containerSlices).toEqual(["/system.slice"]);
    const observe = containerJudging({
      choice: "auto",
      enforce: false,
      env: HOSTED_ENV,
      explicit: NONE,
      policyResolvers: [],
      host: hosted(),
    });
    expect(observe.config).toEqual({
      runtimeSockets: ["/run/docker.sock", "/var/run/docker.sock"],
    });
  });
});

describe("dpndncy start --containers", () => {
  it("a value other than auto, on, off is a usage error (exit 2) naming it", async () => {
    const { start } = await import("../../src/cli/start.js");
    let err = "";
    const code = await start(["--agent", "/bin/false", "--containers", "maybe"], {
      out: () => undefined,
      err: (t) => (err += t),
      env: {},
    });
    expect(code).toBe(2);
    expect(err).toMatch(/--containers: "maybe" is not one of auto, on, off/);
  });
});
