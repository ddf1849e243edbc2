// Generated agent logs for learn-mode tests: valid per schema/event.v1.json, with start and
// stop records (log_sha256 over the bytes before the stop line), so the summarizer sees a clean
// trace. One `Hit` is a DNS lookup (when named) followed by a connect from a process of a step.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Hit {
  name?: string;
  addr: string;
  port: number;
  proto?: "tcp" | "udp";
  step?: string;
  comm?: string;
  /** nearest ancestor first */
  ancestry?: { pid: number; comm: string }[];
}

export function jobLog(hits: Hit[], opts: { start?: string; mode?: string } = {}): string {
  const t0 = Date.parse(opts.start ?? "2026-11-20T10:00:00Z");
  let seq = 0;
  const ts = () => `${new Date(t0 + seq * 10).toISOString().replace("Z", "000000Z")}`;
  const base = (kind: string, pid: number, comm: string, step: string | null) => ({
    v: 1,
    kind,
    ts: ts(),
    seq,
    pid,
    tid: pid,
    ppid: 1,
    uid: 1001,
    comm,
    cgroup: 4242,
    step,
  });
  const lines: string[] = [];
  const counts: Record<string, number> = { agent: 1 };
  const push = (o: Record<string, unknown>) => {
    lines.push(JSON.stringify(o));
    counts[o.kind as string] = (counts[o.kind as string] ?? 0) + 1;
    seq++;
  };
  lines.push(
    JSON.stringify({
      ...base("agent", 900, "dpndncy-agent", null),
      event: "start",
      version: "0.1.0",
      kernel: "6.18.0",
      mode: opts.mode ?? "learn",
      policy_sha256: null,
      attach: { connect: "cgroup/connect4+connect6" },
    }),
  );
  seq++;
  hits.forEach((h, i) => {
    const pid = 2000 + i;
    const comm = h.comm ?? "curl";
    const step = h.step ?? "build";
    if (h.name) {
      push({
        ...base("dns", pid, comm, step),
        name: h.name,
        qtype: h.addr.includes(":") ? "AAAA" : "A",
        answers: [h.addr],
        source: "libc",
        rcode: 0,
      });
    }
    push({
      ...base("connect", pid, comm, step),
      proto: h.proto ?? "tcp",
      family: h.addr.includes(":") ? "inet6" : "inet",
      addr: h.addr,
      port: h.port,
      result: 0,
      source: "cgroup",
      ...(h.ancestry ? { ancestry: h.ancestry } : {}),
    });
  });
  const body = `${lines.join("\n")}\n`;
  const stop = {
    ...base("agent", 900, "dpndncy-agent", null),
    event: "stop",
    version: "0.1.0",
    events: counts,
    lost: { ringbuf: 0 },
    duration_s: 1,
    complete: true,
    reason: "post step",
    log_sha256: createHash("sha256").update(body).digest("hex"),
  };
  return `${body}${JSON.stringify(stop)}\n`;
}

export function writeJobLog(dir: string, name: string, hits: Hit[], start?: string): string {
  const path = join(dir, name);
  writeFileSync(path, jobLog(hits, start ? { start } : {}));
  return path;
}

/** Three jobs of one workflow: the wildcard collapse, an IP-only entry, stable and unstable ports. */
export const THREE_JOBS: Hit[][] = [
  [
    { name: "registry.npmjs.org", addr: "104.16.24.35", port: 443, step: "install", comm: "npm" },
    { name: "github.com", addr: "140.82.112.3", port: 443, step: "checkout", comm: "git" },
    { name: "a.pkg.example.net", addr: "198.51.100.10", port: 443, step: "install" },
    { name: "api.example.org", addr: "198.51.100.20", port: 8080, step: "test" },
    { addr: "192.0.2.7", port: 9000, step: "test", comm: "nc" },
    { name: "localhost", addr: "127.0.0.1", port: 5432, step: "test", comm: "psql" },
    { addr: "127.0.0.53", port: 53, proto: "udp", step: "install" },
  ],
  [
    { name: "registry.npmjs.org", addr: "104.16.25.35", port: 443, step: "install", comm: "npm" },
    { name: "b.pkg.example.net", addr: "198.51.100.11", port: 443, step: "install" },
    { name: "api.example.org", addr: "198.51.100.20", port: 8443, step: "test" },
    { addr: "192.0.2.7", port: 9000, step: "test", comm: "nc" },
    { addr: "10.1.0.2", port: 53, proto: "udp", step: "install", comm: "dig" },
  ],
  [
    { name: "registry.npmjs.org", addr: "104.16.24.35", port: 443, step: "install", comm: "npm" },
    { name: "c.pkg.example.net", addr: "198.51.100.12", port: 443, step: "install" },
    { name: "pkg.example.net", addr: "198.51.100.9", port: 443, step: "install" },
    { name: "objects.githubusercontent.com", addr: "185.199.108.133", port: 443, step: "checkout" },
    { name: "x.github.io", addr: "185.199.110.153", port: 443, step: "docs" },
    { name: "y.github.io", addr: "185.199.110.153", port: 443, step: "docs" },
    { name: "z.github.io", addr: "185.199.110.153", port: 443, step: "docs" },
    { addr: "2001:db8::5", port: 443, step: "test" },
  ],
];
