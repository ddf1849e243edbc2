// Real TCP/UDP servers (fixtures/servers.py) and the DNS server (fixtures/dns_server.py),
// each started inside a test network namespace and stopped at cleanup.
import { join } from "node:path";
import { FIXTURES, onCleanup, PYTHON } from "./env.js";
import type { Netns } from "./netns.js";
import { type Background, spawnBackground } from "./proc.js";

/** Starts servers for the given specs (tcp:ADDR:PORT, udp:[ADDR6]:PORT); returns spec -> bound port. */
export async function startServers(ns: Netns, specs: string[]): Promise<Record<string, number>> {
  const bg = spawnBackground(ns.exec(PYTHON, join(FIXTURES, "servers.py"), ...specs));
  onCleanup(() => bg.stop());
  const line = await bg.waitForLine(/^READY /);
  return JSON.parse(line.slice("READY ".length)) as Record<string, number>;
}

export interface Zone {
  [name: string]: { A?: string[]; AAAA?: string[] };
}

export interface DnsServer {
  bg: Background;
  /** "proto name qtype" of every query the server answered so far. */
  queries(): string[];
}

/** DNS server for `zone` on port 53 of `addrs` inside ns (UDP and TCP). */
export async function startDns(
  ns: Netns,
  addrs: string[],
  zone: Zone,
  ttl = 60,
): Promise<DnsServer> {
  const listen = addrs.flatMap((a) => ["--listen", a]);
  const bg = spawnBackground(
    ns.exec(
      PYTHON,
      join(FIXTURES, "dns_server.py"),
      ...listen,
      "--port",
      "53",
      "--zone",
      JSON.stringify(zone),
      "--ttl",
      String(ttl),
    ),
  );
  onCleanup(() => bg.stop());
  await bg.waitForLine(/^READY$/);
  return {
    bg,
    queries: () =>
      bg
        .stdout()
        .split("\n")
        .filter((l) => l.startsWith("QUERY "))
        .map((l) => l.slice(6)),
  };
}
