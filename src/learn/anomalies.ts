/**
 * Anomalies: this job's egress the baseline has never seen (a new destination, or a known one
 * on a new port), with the steps that reached it and, from the log, the process ancestry of the
 * first connect. Flagged in every mode that has a baseline; the first job has nothing to
 * compare with and flags nothing.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Predicate } from "../trace/types.js";
import { type Baseline, canonicalAddr, destinationKeys } from "./baseline.js";

export interface Anomaly {
  /** The baseline key that is new (name or IP). */
  key: string;
  why: "new destination" | "new port";
  addr: string;
  port: number;
  proto: string;
  hostnames: string[];
  count: number;
  steps: string[];
  /** The connecting process and its ancestors (nearest first), when the log has them. */
  process?: { pid: number; comm: string };
  ancestry?: { pid: number; comm: string }[];
}

export function anomalies(baseline: Baseline, predicate: Predicate): Anomaly[] {
  if (baseline.total_jobs === 0) return [];
  const known = new Map(baseline.destinations.map((e) => [e.key, e]));
  const out = new Map<string, Anomaly>();
  for (const d of predicate.egress) {
    for (const { key } of destinationKeys(d, { denied: true })) {
      const e = known.get(key);
      const why = !e
        ? "new destination"
        : !e.ports_overflow && !e.ports.includes(d.port)
          ? "new port"
          : undefined;
      if (!why) continue;
      const id = `${key} ${d.port}`;
      if (out.has(id)) continue;
      out.set(id, {
        key,
        why,
        addr: canonicalAddr(d.addr),
        port: d.port,
        proto: d.proto,
        hostnames: d.hostnames,
        count: d.count,
        steps: d.steps,
      });
    }
  }
  return [...out.values()].sort((a, b) =>
    a.key < b.key ? -1 : a.key > b.key ? 1 : a.port - b.port,
  );
}

/**
 * Adds the process ancestry of the first connect to each anomaly's address and port, streaming
 * the log once (only lines naming one of the addresses are parsed). A log that cannot be read
 * leaves the anomalies as they are.
 */
export async function withAncestry(log: string, list: Anomaly[]): Promise<Anomaly[]> {
  if (list.length === 0) return list;
  const want = new Map<string, Anomaly[]>();
  for (const a of list)
    want.set(`${a.addr} ${a.port}`, [...(want.get(`${a.addr} ${a.port}`) ?? []), a]);
  const addrs = [...new Set(list.map((a) => a.addr))];
  const found = new Set<string>();
  try {
    const lines = createInterface({ input: createReadStream(log), crlfDelay: Infinity });
    for await (const line of lines) {
      if (!line.includes('"connect"') || !addrs.some((a) => line.includes(a))) continue;
      let ev: Record<string, unknown>;
      try {
        ev = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (ev.kind !== "connect" || typeof ev.addr !== "string") continue;
      const id = `${canonicalAddr(ev.addr)} ${ev.port}`;
      const targets = want.get(id);
      if (!targets || found.has(id)) continue;
      found.add(id);
      const ancestry = Array.isArray(ev.ancestry)
        ? (ev.ancestry as unknown[])
            .filter(
              (x): x is { pid: number; comm: string } =>
                typeof x === "object" &&
                x !== null &&
                typeof (x as { pid: unknown }).pid === "number" &&
                typeof (x as { comm: unknown }).comm === "string",
            )
            .map((x) => ({ pid: x.pid, comm: x.comm }))
        : undefined;
      for (const t of targets) {
        if (typeof ev.pid === "number" && typeof ev.comm === "string")
          t.process = { pid: ev.pid, comm: ev.comm };
        if (ancestry?.length) t.ancestry = ancestry;
      }
      if (found.size === want.size) {
        lines.close();
        break;
      }
    }
  } catch {
    // ancestry is a nicety; the anomaly stands without it
  }
  return list;
}

/** `curl (4242) ← bash (4200) ← Runner.Worker (1000)` */
export function describeProcess(a: Anomaly): string {
  const chain = [...(a.process ? [a.process] : []), ...(a.ancestry ?? [])];
  return chain.map((p) => `${p.comm} (${p.pid})`).join(" ← ");
}
