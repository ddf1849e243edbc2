// Network namespaces the tests create: the workload always runs in one, test hosts (192.0.2.0/24,
// 2001:db8::/32) live in another reached over a veth pair, and no namespace has a route out of
// the machine. `ip netns exec` bind-mounts /etc/netns/<name>/resolv.conf over /etc/resolv.conf,
// which is how a workload gets the test's DNS server.
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { onCleanup } from "./env.js";
import { run, runOk } from "./proc.js";

export const NETNS_PREFIX = `dpk-${process.pid}-`;
let counter = 0;

export class Netns {
  private constructor(readonly name: string) {}

  /** A new namespace with loopback up; deleted at cleanup. */
  static async create(): Promise<Netns> {
    counter += 1;
    const ns = new Netns(`${NETNS_PREFIX}${counter}`);
    await runOk(["ip", "netns", "add", ns.name]);
    onCleanup(() => ns.destroy());
    await ns.ip("link", "set", "lo", "up");
    return ns;
  }

  /** argv prefix that runs a command inside the namespace. */
  exec(...argv: string[]): string[] {
    return ["ip", "netns", "exec", this.name, ...argv];
  }

  async ip(...args: string[]): Promise<void> {
    await runOk(["ip", "-n", this.name, ...args]);
  }

  /**
   * /etc/netns/<name>/resolv.conf, seen as /etc/resolv.conf by `ip netns exec`. Also an
   * nsswitch.conf whose hosts line is "files dns": on hosts with nss-resolve or mdns
   * (Ubuntu runners), glibc would otherwise ask systemd-resolved over a unix socket, which
   * no network namespace stops, and the host's upstream resolvers would see our test names.
   */
  setResolvConf(content: string): void {
    const dir = `/etc/netns/${this.name}`;
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/resolv.conf`, content);
    let nss = "";
    try {
      nss = readFileSync("/etc/nsswitch.conf", "utf8");
    } catch {}
    const lines = nss.split("\n").filter((l) => !/^\s*hosts\s*:/.test(l) && l !== "");
    writeFileSync(`${dir}/nsswitch.conf`, [...lines, "hosts: files dns", ""].join("\n"));
  }

  /**
   * A veth pair between this namespace and `peer`, with the given addresses (CIDR) on each end.
   * No default route is added anywhere: only the connected subnets are reachable.
   */
  /** A veth pair to peer with these addresses on each end; returns the two devices' names. */
  async vethTo(
    peer: Netns,
    mine: string[],
    theirs: string[],
  ): Promise<{ mine: string; theirs: string }> {
    counter += 1;
    const a = `dv${process.pid % 100000}x${counter}a`;
    const b = `dv${process.pid % 100000}x${counter}b`;
    await runOk([
      "ip",
      "link",
      "add",
      a,
      "netns",
      this.name,
      "type",
      "veth",
      "peer",
      "name",
      b,
      "netns",
      peer.name,
    ]);
    for (const [ns, dev, addrs] of [
      [this as Netns, a, mine],
      [peer, b, theirs],
    ] as const) {
      for (const cidr of addrs) {
        // nodad: IPv6 addresses usable at once instead of after duplicate address detection
        await ns.ip("addr", "add", cidr, "dev", dev, ...(cidr.includes(":") ? ["nodad"] : []));
      }
      await ns.ip("link", "set", dev, "up");
    }
    return { mine: a, theirs: b };
  }

  async destroy(): Promise<void> {
    // Killing stragglers first: a namespace with live processes lingers after `ip netns del`.
    const pids = await run(["ip", "netns", "pids", this.name]);
    for (const p of pids.stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(p), "SIGKILL");
      } catch {}
    }
    await run(["ip", "netns", "del", this.name]);
    const dir = `/etc/netns/${this.name}`;
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    try {
      if (readdirSync("/etc/netns").length === 0) rmdirSync("/etc/netns");
    } catch {}
  }
}

/** Namespaces and /etc/netns entries of this test process that still exist. */
export async function leftoverNetns(): Promise<string[]> {
  const out: string[] = [];
  const r = await run(["ip", "netns", "list"]);
  for (const line of r.stdout.split("\n")) {
    const name = line.split(" ")[0];
    if (name?.startsWith(NETNS_PREFIX)) out.push(`network namespace ${name}`);
  }
  try {
    for (const n of readdirSync("/etc/netns")) {
      if (n.startsWith(NETNS_PREFIX)) out.push(`/etc/netns/${n}`);
    }
  } catch {}
  return out;
}
