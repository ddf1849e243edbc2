// dns events: a libc lookup (getaddrinfo uprobe) and lookups that bypass libc (dig over UDP and
// TCP, a static binary sending its own query), all answered by the test's DNS server inside the
// workload's network namespace, which `ip netns exec` gives its own /etc/resolv.conf.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { expect, it } from "vitest";
import { type AgentRun, agentRun, expectRunOk } from "../support/kernel/agent.js";
import { compileC } from "../support/kernel/cbuild.js";
import { FIXTURES, PYTHON } from "../support/kernel/env.js";
import { byKind, type DnsEv, type ExecEv } from "../support/kernel/log.js";
import { Netns } from "../support/kernel/netns.js";
import { startDns, type Zone } from "../support/kernel/servers.js";
import { describeKernel } from "../support/kernel/suite.js";

const nonce = randomBytes(4).toString("hex");
const name = (label: string) => `${label}-${nonce}.dpndncy.test`;

const sortU = (a: string[]) => [...new Set(a)].sort();

async function dnsNamespace(zone: Zone): Promise<{ ns: Netns; queries: () => string[] }> {
  const ns = await Netns.create();
  ns.setResolvConf("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n");
  const dns = await startDns(ns, ["127.0.0.1", "::1"], zone);
  return { ns, queries: dns.queries };
}

/** The pid of the workload process whose argv contains `arg`. */
function pidOf(r: AgentRun, arg: string): number {
  const ex = byKind.exec(r.workload).filter((e: ExecEv) => e.argv.includes(arg));
  expect(ex.length, `exec of a process with argument ${arg}`).toBeGreaterThanOrEqual(1);
  return (ex[ex.length - 1] as ExecEv).pid;
}

describeKernel("dns", () => {
  it("libc lookups (getent ahosts, python getaddrinfo A / AAAA / NXDOMAIN): source libc, exact names and answers", async () => {
    const zone: Zone = {
      [name("getent")]: { A: ["192.0.2.80", "192.0.2.81"], AAAA: ["2001:db8::80"] },
      [name("py4")]: { A: ["192.0.2.82"], AAAA: ["2001:db8::82"] },
      [name("py6")]: { A: ["192.0.2.83"], AAAA: ["2001:db8::83"] },
    };
    const { ns, queries } = await dnsNamespace(zone);
    const gai = (n: string, fam: string) =>
      `${PYTHON} -c "import socket,sys\ntry: print(socket.getaddrinfo('${n}', 443, socket.${fam}, socket.SOCK_STREAM))\nexcept socket.gaierror as e: print('gaierror', e)" ${n}`;
    const script = [
      `getent ahosts ${name("getent")}`,
      gai(name("py4"), "AF_INET"),
      gai(name("py6"), "AF_INET6"),
      gai(name("nx"), "AF_INET"),
    ].join("\n");
    const r = await agentRun({ cmd: ns.exec("/bin/sh", "-c", script) });
    expectRunOk(r);
    // the lookups really went to our server
    expect(queries()).toEqual(
      expect.arrayContaining([`udp ${name("py4")} A`, `udp ${name("py6")} AAAA`]),
    );
    expect(r.res.stdout).toContain("192.0.2.80");

    const libc = byKind
      .dns(r.log.events)
      .filter((e) => e.source === "libc" && e.name.endsWith(`${nonce}.dpndncy.test`));
    const expectOne = (n: string, pid: number, qtype: string, answers: string[]) => {
      const evs = libc.filter((e) => e.name === n);
      expect(evs, `libc dns events for ${n}`).toHaveLength(1);
      const e = evs[0] as DnsEv;
      expect(e.pid, `pid of the ${n} lookup`).toBe(pid);
      expect(e.qtype).toBe(qtype);
      expect(sortU(e.answers)).toEqual(sortU(answers));
      return e;
    };
    const g = expectOne(name("getent"), pidOf(r, name("getent")), "ANY", [
      "192.0.2.80",
      "192.0.2.81",
      "2001:db8::80",
    ]);
    expect(g.comm).toBe("getent");
    expectOne(name("py4"), pidOf(r, name("py4")), "A", ["192.0.2.82"]);
    expectOne(name("py6"), pidOf(r, name("py6")), "AAAA", ["2001:db8::83"]);
    expectOne(name("nx"), pidOf(r, name("nx")), "A", []);
    expect(libc).toHaveLength(4);
    // the same lookups also cross port 53: any packet-level event must agree with the server
    for (const e of byKind
      .dns(r.log.events)
      .filter((x) => x.source === "packet" && x.name in zone)) {
      const rec = zone[e.name] as { A?: string[]; AAAA?: string[] };
      expect(["A", "AAAA"]).toContain(e.qtype);
      expect(sortU(e.answers)).toEqual(sortU(rec[e.qtype as "A" | "AAAA"] ?? []));
    }
  });

  it("DPNDNCY_NO_GAI_UPROBE=1: no getaddrinfo uprobe is attached, and a libc lookup is seen from its packets only", async () => {
    const n = name("nouprobe");
    const { ns, queries } = await dnsNamespace({
      [n]: { A: ["192.0.2.84"], AAAA: ["2001:db8::84"] },
    });
    const r = await agentRun({
      cmd: ns.exec("getent", "ahosts", n),
      env: { ...process.env, DPNDNCY_NO_GAI_UPROBE: "1" },
    });
    expectRunOk(r);
    expect(queries()).toEqual(expect.arrayContaining([`udp ${n} A`]));
    const start = byKind.agent(r.log.events).find((e) => e.event === "start");
    expect(start?.attach?.dns, "the start record's DNS hooks").toBe("cgroup_skb/ingress");
    const evs = byKind.dns(r.log.events).filter((e) => e.name === n);
    expect(evs.filter((e) => e.source === "libc")).toEqual([]);
    const pkt = evs.filter((e) => e.source === "packet");
    expect(pkt.length, "packet dns events for the lookup").toBeGreaterThanOrEqual(1);
    for (const e of pkt) expect(e.pid, "attributed to getent").toBe(pidOf(r, n));
    expect(sortU(pkt.flatMap((e) => e.answers))).toEqual(expect.arrayContaining(["192.0.2.84"]));
  });

  it("lookups that bypass libc (dig over UDP and TCP, a static binary): source packet, exact names, answers and pid", async () => {
    const rawDns = await compileC(join(FIXTURES, "raw_dns.c"), ["-static"]);
    const zone: Zone = {
      [name("dig")]: { A: ["198.51.100.20", "198.51.100.21"], AAAA: ["2001:db8::20"] },
      [name("digtcp")]: { A: ["198.51.100.22"], AAAA: ["2001:db8::22", "2001:db8::23"] },
      [name("static")]: { A: ["203.0.113.24"], AAAA: ["2001:db8::24"] },
    };
    const { ns, queries } = await dnsNamespace(zone);
    const script = [
      `dig +short +tries=1 ${name("dig")} A`,
      `dig +short +tcp +tries=1 ${name("digtcp")} AAAA`,
      `${rawDns} ${name("static")} A`,
      `dig +short +tries=1 ${name("nxdig")} A`,
    ].join("\n");
    const r = await agentRun({ cmd: ns.exec("/bin/sh", "-c", script) });
    expectRunOk(r);
    expect(queries()).toEqual(
      expect.arrayContaining([
        `udp ${name("dig")} A`,
        `tcp ${name("digtcp")} AAAA`,
        `udp ${name("static")} A`,
      ]),
    );
    expect(r.res.stdout).toContain("203.0.113.24");

    const ours = byKind.dns(r.log.events).filter((e) => e.name.endsWith(`${nonce}.dpndncy.test`));
    expect(
      ours.filter((e) => e.source === "libc"),
      "no libc events: these programs bypass libc",
    ).toEqual([]);
    const expectOne = (n: string, qtype: string, answers: string[], comm: string) => {
      const evs = ours.filter((e) => e.name === n);
      expect(evs, `dns events for ${n}`).toHaveLength(1);
      const e = evs[0] as DnsEv;
      expect(e).toMatchObject({ source: "packet", qtype, comm });
      expect(sortU(e.answers)).toEqual(sortU(answers));
      expect(e.pid, `pid of the ${n} lookup`).toBe(pidOf(r, n));
    };
    expectOne(name("dig"), "A", ["198.51.100.20", "198.51.100.21"], "dig");
    expectOne(name("digtcp"), "AAAA", ["2001:db8::22", "2001:db8::23"], "dig");
    expectOne(name("static"), "A", ["203.0.113.24"], "raw_dns-static");
    expectOne(name("nxdig"), "A", [], "dig");
    expect(ours).toHaveLength(4);
  });
});
