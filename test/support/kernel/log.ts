// Reading an agent log the way a consumer does: bytes -> UTF-8 -> one JSON object per line,
// every line validated against schema/event.v1.json, then the process tree rebuilt from the
// log alone.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import { expect } from "vitest";
import type {
  AgentEvent,
  ConnectEvent,
  DnsEvent,
  ExecEvent,
  ExitEvent,
  FileEvent,
  TraceEvent,
} from "../../../src/trace/types.js";
import { SCHEMA } from "./env.js";

/** The test's view of an event: the one definition (src/trace/types.ts), open to probing extra fields. */
type Loose<T> = T & { [field: string]: unknown };
export type Ev = Loose<TraceEvent>;
export type ExecEv = Loose<ExecEvent>;
export type ExitEv = Loose<ExitEvent>;
export type ConnectEv = Loose<ConnectEvent>;
export type FileEv = Loose<FileEvent>;
export type DnsEv = Loose<DnsEvent>;
export type AgentEv = Loose<AgentEvent>;

const ajv = new Ajv2020({ strictTypes: false, allErrors: true });
const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA, "utf8")) as object);

export interface Log {
  path: string;
  bytes: Buffer;
  lines: string[];
  events: Ev[];
  /** Every way the file breaks the contract: bad UTF-8, bad JSON, schema violations, seq gaps. */
  errors: string[];
}

export function parseLog(bytes: Buffer, path = "<log>"): Log {
  const errors: string[] = [];
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    errors.push("log is not valid UTF-8");
    text = bytes.toString("utf8");
  }
  if (text.length > 0 && !text.endsWith("\n")) errors.push("last line is not terminated by \\n");
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const events: Ev[] = [];
  lines.forEach((line, i) => {
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      errors.push(`line ${i + 1}: not JSON (${(e as Error).message}): ${line.slice(0, 200)}`);
      return;
    }
    if (!validate(obj)) {
      const why = (validate.errors ?? [])
        .map((er) => `${er.instancePath || "/"} ${er.message ?? ""}`)
        .join("; ");
      errors.push(`line ${i + 1}: schema: ${why}: ${line.slice(0, 300)}`);
    }
    const ev = obj as Ev;
    if (typeof ev.seq === "number" && ev.seq !== i) {
      errors.push(`line ${i + 1}: seq ${ev.seq}, expected ${i} (a gap means lost lines)`);
    }
    events.push(ev);
  });
  return { path, bytes, lines, events, errors };
}

export function readLog(path: string): Log {
  return parseLog(readFileSync(path), path);
}

export const byKind = {
  exec: (evs: Ev[]) => evs.filter((e): e is ExecEv => e.kind === "exec"),
  exit: (evs: Ev[]) => evs.filter((e): e is ExitEv => e.kind === "exit"),
  connect: (evs: Ev[]) => evs.filter((e): e is ConnectEv => e.kind === "connect"),
  file: (evs: Ev[]) => evs.filter((e): e is FileEv => e.kind === "file"),
  dns: (evs: Ev[]) => evs.filter((e): e is DnsEv => e.kind === "dns"),
  agent: (evs: Ev[]) => evs.filter((e): e is AgentEv => e.kind === "agent"),
};

/**
 * The pids of `root` and all its descendants, from the pid/ppid pairs in the log alone
 * (what a consumer has). The first ppid seen for a pid wins: later lines may show a
 * reparented process.
 */
export function subtree(events: Ev[], root: number): Set<number> {
  const parent = new Map<number, number>();
  for (const e of events) {
    if (e.kind === "agent") continue;
    if (!parent.has(e.pid) && e.pid !== e.ppid) parent.set(e.pid, e.ppid);
  }
  const children = new Map<number, number[]>();
  for (const [pid, pp] of parent) {
    const l = children.get(pp) ?? [];
    l.push(pid);
    children.set(pp, l);
  }
  const out = new Set<number>([root]);
  const todo = [root];
  while (todo.length > 0) {
    const p = todo.pop() as number;
    for (const c of children.get(p) ?? []) {
      if (!out.has(c)) {
        out.add(c);
        todo.push(c);
      }
    }
  }
  return out;
}

export function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Byte offset at which line `index` (0-based) starts. */
export function lineOffset(bytes: Buffer, index: number): number {
  let off = 0;
  for (let i = 0; i < index; i++) {
    const nl = bytes.indexOf(0x0a, off);
    if (nl < 0) return bytes.length;
    off = nl + 1;
  }
  return off;
}

/** The checks a consumer makes of a finished log: start first, stop last, counts and hash agree. */
export function expectSealedLog(log: Log, complete: boolean): AgentEv {
  expect(log.errors).toEqual([]);
  const first = log.events[0] as AgentEv;
  const last = log.events[log.events.length - 1] as AgentEv;
  expect(first).toMatchObject({ kind: "agent", event: "start" });
  expect(last).toMatchObject({ kind: "agent", event: "stop", complete });
  expect(byKind.agent(log.events).filter((e) => e.event === "stop")).toHaveLength(1);
  // log_sha256 covers every byte before the stop line
  const off = lineOffset(log.bytes, log.events.length - 1);
  expect(last.log_sha256).toBe(sha256(log.bytes.subarray(0, off)));
  // per-kind counts match the lines actually in the log
  const counts: Record<string, number> = {};
  for (const e of log.events) if (e.kind !== "agent") counts[e.kind] = (counts[e.kind] ?? 0) + 1;
  for (const [k, n] of Object.entries(last.events ?? {})) {
    if (k === "agent") continue;
    expect(n, `events.${k} in the stop record`).toBe(counts[k] ?? 0);
  }
  for (const [k, n] of Object.entries(counts)) expect(last.events?.[k], `events.${k}`).toBe(n);
  return last;
}
