/**
 * Where this host's container runtimes put their containers, found from the running daemons
 * (/proc: comm, argv, cgroup), their config files and the cgroup tree, so that enforce mode on
 * a single-job host judges every container without the user naming cgroups
 * (docs/containers.md, "Judged by default"). Everything is read through a HostView, so the
 * unit tests give it a made-up /proc and cgroup tree; nothing here writes anything.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { AgentConfigInput } from "./config.js";

export interface HostView {
  /** the file's text, undefined when it cannot be read */
  read(path: string): string | undefined;
  /** directory entries, [] when it cannot be read */
  list(dir: string): string[];
  isDir(path: string): boolean;
  exists(path: string): boolean;
}

export const realHost: HostView = {
  read: (p) => {
    try {
      return readFileSync(p, "utf8");
    } catch {
      return undefined;
    }
  },
  list: (d) => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  },
  isDir: (p) => {
    try {
      return existsSync(p) && statSync(p).isDirectory();
    } catch {
      return false;
    }
  },
  exists: (p) => existsSync(p),
};

/** What the agent config gets, and what the user is told. */
export interface RuntimeLayout {
  containerCgroups: string[];
  containerSlices: string[];
  runtimeCgroups: string[];
  runtimeSockets: string[];
  dockerRoot?: string;
  /** one line per runtime found and what of it is judged */
  found: string[];
  /** what is NOT judged and why: said as a warning, never dropped */
  notJudged: string[];
}

export type ContainersChoice = "auto" | "on" | "off";
export const CONTAINERS_CHOICES: readonly ContainersChoice[] = ["auto", "on", "off"];

/**
 * A host that runs one job and is thrown away after it, so every container on it is the
 * job's: judging them all by the job's policy cannot touch another job. Only what the
 * platform guarantees counts (GitHub-hosted runners: a fresh VM per job); a self-hosted
 * runner may share its Docker daemon with other runners.
 */
export function singleJobHost(env: NodeJS.ProcessEnv): string | undefined {
  if (env.GITHUB_ACTIONS === "true" && env.RUNNER_ENVIRONMENT === "github-hosted")
    return "GitHub-hosted runner (a fresh VM per job)";
  return undefined;
}

/** The cgroup v2 mount point, from the mount table. */
export function cgroup2Root(host: HostView): string | undefined {
  for (const l of (host.read("/proc/self/mounts") ?? "").split("\n")) {
    const f = l.split(" ");
    if (f[2] === "cgroup2" && f[1]) return f[1];
  }
  return undefined;
}

/** The process's cgroup v2 path ("/system.slice/docker.service"), from /proc/<pid>/cgroup. */
function procCgroup(host: HostView, pid: string): string | undefined {
  for (const l of (host.read(`/proc/${pid}/cgroup`) ?? "").split("\n"))
    if (l.startsWith("0::")) return l.slice(3).replace(/ \(deleted\)$/, "");
  return undefined;
}

function pidsByComm(host: HostView, comm: string): string[] {
  return host
    .list("/proc")
    .filter((p) => /^\d+$/.test(p) && host.read(`/proc/${p}/comm`)?.trim() === comm);
}

/** `--flag value` and `--flag=value` (repeatable) from an argv. */
function flagValues(argv: string[], names: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    for (const n of names) {
      if (a === n && i + 1 < argv.length) out.push(argv[++i] ?? "");
      else if (a.startsWith(`${n}=`)) out.push(a.slice(n.length + 1));
    }
  }
  return out;
}

/** systemd's slice name → its cgroup path: "a-b.slice" is /a.slice/a-b.slice. */
export function slicePath(name: string): string | undefined {
  if (!/^[A-Za-z0-9_.:-]+\.slice$/.test(name) || name === "-.slice") return undefined;
  const parts = name.slice(0, -".slice".length).split("-");
  if (parts.some((p) => p === "")) return undefined;
  return `/${parts.map((_, i) => `${parts.slice(0, i + 1).join("-")}.slice`).join("/")}`;
}

interface DockerdView {
  /** undefined: installed but not running (socket activation starts it at the first use) */
  pid?: string;
  /** "dockerd 901" for the messages */
  name: string;
  argv: string[];
  json: Record<string, unknown>;
}

const DOCKERD_BINARIES = ["/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd"];

function dockerds(host: HostView): DockerdView[] {
  const pids: (string | undefined)[] = pidsByComm(host, "dockerd");
  // not running yet: judge where it will put containers by its config, so the job's first
  // `docker run` (which starts it through docker.socket) is judged too
  if (pids.length === 0 && DOCKERD_BINARIES.some((b) => host.exists(b))) pids.push(undefined);
  return pids.map((pid) => {
    const argv = pid
      ? (host.read(`/proc/${pid}/cmdline`) ?? "").split("\0").filter(Boolean).slice(1)
      : [];
    const file = flagValues(argv, ["--config-file"]).at(-1) ?? "/etc/docker/daemon.json";
    let json: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse(host.read(file) ?? "{}");
      if (parsed && typeof parsed === "object") json = parsed;
    } catch {
      // dockerd refuses to start with a bad file, so a running one read it differently than
      // we can: its flags still tell most, and what they do not is said below
    }
    return { pid, name: pid ? `dockerd ${pid}` : "dockerd (not running)", argv, json };
  });
}

const strings = (x: unknown): string[] =>
  Array.isArray(x) ? x.filter((s): s is string => typeof s === "string") : [];

/** Docker's cgroup driver as dockerd picks it: its exec-opt, else systemd on a unified
 * cgroup v2 host booted with systemd, else cgroupfs. */
function cgroupDriver(host: HostView, d: DockerdView, cg2: string): string {
  const opts = [...strings(d.json["exec-opts"]), ...flagValues(d.argv, ["--exec-opt"])];
  const set = opts
    .map((o) => /^native\.cgroupdriver=(.*)$/.exec(o.replace(/\s/g, ""))?.[1])
    .filter((x) => x !== undefined)
    .at(-1);
  if (set) return set;
  return cg2 === "/sys/fs/cgroup" && host.isDir("/run/systemd/system") ? "systemd" : "cgroupfs";
}

function dockerSockets(d: DockerdView, notJudged: string[]): string[] {
  const hosts = [...strings(d.json.hosts), ...flagValues(d.argv, ["-H", "--host"])];
  const out: string[] = [];
  for (const h of hosts.length ? hosts : ["unix:///var/run/docker.sock"]) {
    if (h.startsWith("unix://")) out.push(h.slice("unix://".length));
    else if (h.startsWith("fd://"))
      out.push("/run/docker.sock", "/var/run/docker.sock"); // docker.socket's ListenStream
    else
      notJudged.push(
        `${d.name} also listens on ${h}: containers asked for through it are judged, but carry no requester`,
      );
  }
  return out;
}

/** Every running dockerd, and rootful Podman under systemd, as agent config. */
export function detectRuntimes(host: HostView = realHost): RuntimeLayout {
  const L: RuntimeLayout = {
    containerCgroups: [],
    containerSlices: [],
    runtimeCgroups: [],
    runtimeSockets: [],
    found: [],
    notJudged: [],
  };
  const cg2 = cgroup2Root(host);
  if (!cg2) {
    L.notJudged.push("no cgroup v2 mount: containers cannot be judged");
    return L;
  }
  const add = (list: string[], p: string) => {
    if (!list.includes(p)) list.push(p);
  };
  for (const d of dockerds(host)) {
    // rootless Docker: dockerd is root only in its user namespace (the host sees the user's
    // uid), and its containers are in that user's own systemd slice: not judged
    const uid = d.pid && /^Uid:\s+(\d+)/m.exec(host.read(`/proc/${d.pid}/status`) ?? "")?.[1];
    if (uid && uid !== "0") {
      L.notJudged.push(
        `${d.name} is rootless (uid ${uid}): its containers are not judged (docs/containers.md)`,
      );
      continue;
    }
    const driver = cgroupDriver(host, d, cg2);
    const parent =
      flagValues(d.argv, ["--cgroup-parent"]).at(-1) ??
      (typeof d.json["cgroup-parent"] === "string" ? d.json["cgroup-parent"] : undefined);
    const what: string[] = [];
    if (driver === "systemd") {
      // containers (and BuildKit's RUN steps) are <slice>/docker-<id>.scope among the slice's
      // other services: a container-slice judges only those scopes
      const slice = slicePath(parent ?? "system.slice");
      if (!slice) L.notJudged.push(`${d.name}: cgroup-parent "${parent}" is not a slice name`);
      else if (!host.isDir(join(cg2, slice)))
        L.notJudged.push(`${d.name}: its containers' slice ${slice} does not exist yet`);
      else {
        add(L.containerSlices, slice);
        what.push(`containers in ${slice}/docker-<id>.scope`);
      }
    } else if (driver === "cgroupfs") {
      // containers are <parent>/<id>, BuildKit's RUN steps <parent>/buildkit/<id>
      const p = parent ?? "/docker";
      if (!p.startsWith("/") || p.split("/").includes(".."))
        L.notJudged.push(`${d.name}: relative cgroup-parent "${p}": name it in container-cgroups`);
      else if (!host.isDir(join(cg2, p)))
        L.notJudged.push(
          `${d.name}: its containers' cgroup ${p} does not exist yet (no container has run): name it in container-cgroups once it does`,
        );
      else {
        add(L.containerCgroups, p);
        what.push(`containers below ${p}`);
      }
    } else L.notJudged.push(`${d.name}: unknown cgroup driver "${driver}"`);
    // the daemon's own egress (pulls, the embedded DNS's forwards), and containerd's where it
    // runs apart (system containerd: its pulls with the containerd image store)
    const own = [...(d.pid ? [d.pid] : []), ...pidsByComm(host, "containerd")]
      .map((pid) => procCgroup(host, pid))
      .filter((c): c is string => c !== undefined);
    if (!d.pid)
      L.notJudged.push(
        "dockerd is installed but not running: its containers are judged where its config puts them, but its own egress (image pulls, the embedded DNS's forwards) is not: start it before dpndncy (`sudo systemctl start docker`)",
      );
    else if (own.length === 0) L.notJudged.push(`${d.name}: its cgroup could not be read`);
    for (const c of own) {
      if (c === "/")
        L.notJudged.push(`a runtime daemon runs in the cgroup v2 root: its pulls are not judged`);
      else {
        add(L.runtimeCgroups, c);
        what.push(`daemon egress of ${c}`);
      }
    }
    for (const s of dockerSockets(d, L.notJudged)) add(L.runtimeSockets, s);
    const root = flagValues(d.argv, ["--data-root"]).at(-1) ?? d.json["data-root"];
    if (typeof root === "string" && root.startsWith("/")) L.dockerRoot ??= root;
    L.found.push(
      `docker (${d.name}, ${driver} driver): ${what.join(", ") || "nothing"}${what.length ? " (BuildKit RUN steps too)" : ""}`,
    );
  }
  // Podman has no daemon; rootful Podman under systemd puts each container in
  // machine.slice/libpod-<id>.scope. With the cgroupfs manager its parent is per invocation
  // (--cgroup-parent), so nothing can be named for it in advance.
  const podman = ["/usr/bin/podman", "/usr/local/bin/podman"].some((p) => host.exists(p));
  if (podman) {
    if (cg2 === "/sys/fs/cgroup" && host.isDir("/run/systemd/system")) {
      if (host.isDir(join(cg2, "machine.slice"))) {
        add(L.containerSlices, "/machine.slice");
        L.found.push("podman (rootful, systemd): containers in /machine.slice/libpod-<id>.scope");
      } else
        L.notJudged.push(
          "podman: /machine.slice does not exist yet, so rootful podman's containers are not judged (name it in container-slices once it does)",
        );
    } else
      L.notJudged.push(
        "podman (cgroupfs manager): its containers' parent is chosen per run: name it in container-cgroups",
      );
  }
  if (L.runtimeSockets.length > 4) {
    // the agent takes 4 (agent-c/records/runtimes.c): a container asked for through another one is
    // still judged, it only carries no requester
    L.notJudged.push(
      `requesters only through ${L.runtimeSockets.slice(0, 4).join(", ")}; not through ${L.runtimeSockets.slice(4).join(", ")} (the agent watches 4 API sockets)`,
    );
    L.runtimeSockets = L.runtimeSockets.slice(0, 4);
  }
  const total = L.containerCgroups.length + L.containerSlices.length + L.runtimeCgroups.length;
  // the agent refuses a config with more (agent-c/records/runtimes.h RT_MAX_CGROUPS): start fails, closed
  if (total > 8)
    L.notJudged.push(
      `${total} runtime cgroups found: the agent takes at most 8 and will refuse to start`,
    );
  return L;
}

/** Docker hands a container the host's resolvers, or systemd-resolved's upstreams when the
 * host's are only loopback (127.0.0.53): those are what containers and the embedded DNS ask. */
export function containerResolvers(host: HostView = realHost): string[] {
  const ns = (file: string) =>
    (host.read(file) ?? "")
      .split("\n")
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]?.replace(/%.*$/, ""))
      .filter((x): x is string => x !== undefined);
  const own = ns("/etc/resolv.conf");
  const loopback = (a: string) => a.startsWith("127.") || a === "::1";
  if (own.length > 0 && !own.every(loopback)) return own;
  return [...own, ...ns("/run/systemd/resolve/resolv.conf").filter((a) => !loopback(a))];
}

/** The answer to "judge this job's containers?" and its config lines. */
export interface ContainerJudging {
  config: Pick<
    AgentConfigInput,
    "containerCgroups" | "containerSlices" | "runtimeCgroups" | "runtimeSockets" | "dockerRoot"
  > & { dnsResolvers?: string[] };
  /** for the log */
  info: string[];
  /** loud: a warning in the action, stderr in the CLI */
  warnings: string[];
}

/**
 * `choice` auto: judge every container on a single-job host, nothing found elsewhere (said);
 * on: the user says the host is the job's alone; off: only what the user named. Explicit
 * cgroups always apply. Only enforce mode judges; the sockets and the data root also serve
 * observe mode's attribution.
 */
export function containerJudging(o: {
  choice: ContainersChoice;
  enforce: boolean;
  env: NodeJS.ProcessEnv;
  explicit: { containerCgroups: string[]; containerSlices: string[]; runtimeCgroups: string[] };
  policyResolvers: readonly string[];
  host?: HostView;
}): ContainerJudging {
  const host = o.host ?? realHost;
  const ex = o.explicit;
  const out: ContainerJudging = {
    // only the three lists: `explicit` may be a wider object (the action's inputs)
    config: o.enforce
      ? {
          containerCgroups: ex.containerCgroups,
          containerSlices: ex.containerSlices,
          runtimeCgroups: ex.runtimeCgroups,
        }
      : {},
    info: [],
    warnings: [],
  };
  const single = singleJobHost(o.env);
  const detect = o.choice === "on" || (o.choice === "auto" && single !== undefined);
  if (!detect) {
    if (o.enforce && o.choice === "auto")
      out.info.push(
        "containers: not judged unless named (container-cgroups / container-slices / runtime-cgroups): this host is not known to run one job only; `containers: on` judges every container on it",
      );
    return out;
  }
  const L = detectRuntimes(host);
  out.config.runtimeSockets = L.runtimeSockets;
  if (L.dockerRoot) out.config.dockerRoot = L.dockerRoot;
  if (!o.enforce) return out;
  const merge = (a: string[] = [], b: string[]) => [...new Set([...a, ...b])];
  out.config.containerCgroups = merge(ex.containerCgroups, L.containerCgroups);
  out.config.containerSlices = merge(ex.containerSlices, L.containerSlices);
  out.config.runtimeCgroups = merge(ex.runtimeCgroups, L.runtimeCgroups);
  // the policy names no resolver: add those Docker gives containers, or their DNS would be
  // refused as an unsanctioned resolver (they are the upstreams of the host's own stub)
  if (o.policyResolvers.length === 0 && (L.containerCgroups.length || L.containerSlices.length))
    out.config.dnsResolvers = containerResolvers(host);
  const why = o.choice === "on" ? "containers: on" : single;
  out.info.push(`containers: judged by the job's policy (${why}; \`containers: off\` to opt out)`);
  for (const f of L.found) out.info.push(`containers: ${f}`);
  if (L.found.length === 0) out.info.push("containers: no container runtime running");
  for (const n of L.notJudged) out.warnings.push(`containers NOT judged: ${n}`);
  return out;
}
