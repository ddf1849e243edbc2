// Folds validated events into bounded summary state. Every collection is capped (Limits): the
// log is written by a monitored, possibly hostile workload, which could otherwise make us hold
// millions of distinct destinations or names. What does not fit is counted in `overflow`.
import { createHash } from "node:crypto";
import type {
  AgentEvent,
  ConnectEvent,
  Destination,
  DnsEvent,
  DnsName,
  EventKind,
  ExecEvent,
  ExecSummaryEntry,
  ExitEvent,
  FileEvent,
  Limits,
  SensitiveFile,
  TamperEvent,
  TraceEvent,
  Verdict,
} from "./types.js";

/**
 * What the fold reads of each event: a view of the event types (types.ts), not a second
 * definition. A full TraceEvent is one; the fast path (fastparse.ts) builds only this much.
 */
export type FoldEvent =
  // exec: of argv only argv[1] (arg1_sha256), null when argv has no [1]
  | (Pick<ExecEvent, "kind" | "seq" | "step" | "filename"> & { arg1: string | null })
  | Pick<ExitEvent, "kind" | "seq">
  | Pick<
      ConnectEvent,
      "kind" | "seq" | "step" | "proto" | "family" | "addr" | "port" | "result" | "verdict" | "rule"
    >
  | Pick<FileEvent, "kind" | "seq" | "step" | "path" | "rule" | "comm">
  | Pick<DnsEvent, "kind" | "seq" | "step" | "name" | "answers" | "rcode">
  | AgentEvent
  | Pick<TamperEvent, "kind" | "seq" | "ts" | "what" | "detail">;
type View<K extends FoldEvent["kind"]> = Extract<FoldEvent, { kind: K }>;

/** The fold's view of a whole event (the reference path's). */
export function foldView(e: TraceEvent): FoldEvent {
  if (e.kind !== "exec") return e;
  const arg1 = e.argv.length > 1 ? (e.argv[1] ?? null) : null;
  return { kind: "exec", seq: e.seq, step: e.step, filename: e.filename, arg1 };
}

export const DEFAULT_LIMITS: Limits = {
  destinations: 10_000,
  execs: 20_000,
  dns_names: 10_000,
  files: 5_000,
  hostnames_per_addr: 32,
  steps_per_entry: 64,
};

/** Shown for events whose step is null (the agent could not attribute them). */
export const UNKNOWN_STEP = "(unknown)";

const VERDICT_RANK: Record<Verdict, number> = { allow: 0, audit: 1, deny: 2 };
const MAX_TAMPER_EVENTS = 20;

interface DestState {
  addr: string;
  port: number;
  proto: Destination["proto"];
  family: Destination["family"];
  verdicts: Partial<Record<Verdict, number>>;
  count: number;
  failed: number;
  steps: Set<string>;
  /**
   * The step last added to `steps`: consecutive events mostly share it, and a compare is
   * cheaper than a Set lookup. "" until then, with `steps` empty: a string, not null, so the
   * compare stays a string compare (a compare with null or a string goes the generic way).
   */
  lastStep: string;
  rules: Set<string>;
  /** Likewise for `rules`. */
  lastRule: string;
}

interface CountedSteps {
  count: number;
  steps: Set<string>;
  lastStep: string;
}

type ExecState = CountedSteps & { binary: string; arg1: string | null };
type DnsState = CountedSteps & { failed: number };
type FileState = CountedSteps & { path: string; rule: string; comms: Set<string> };

export class Accumulator {
  // Per kind, in named fields: a store keyed by the kind string was a tenth of add().
  private readonly n = { exec: 0, exit: 0, connect: 0, file: 0, dns: 0, agent: 0, tamper: 0 };
  readonly overflow: Partial<Record<keyof Limits, number>> = {};
  // addr -> its destinations (a few protocols and ports): no key string built per connect.
  private readonly destinations = new Map<string, DestState[]>();
  private destinationCount = 0;
  // addr -> names whose answers contained it; joined onto destinations at the end, so a DNS
  // answer logged after the connect (packet-path DNS can be) still names it.
  private readonly answerNames = new Map<string, Set<string>>();
  // filename -> argv[1] (null: none) -> state.
  private readonly execs = new Map<string, Map<string | null, ExecState>>();
  private execCount = 0;
  private readonly dnsNames = new Map<string, DnsState>();
  // rule -> path -> state: no key string joined (and flattened to be hashed) per event.
  private readonly files = new Map<string, Map<string, FileState>>();
  private fileCount = 0;
  start: AgentEvent | null = null;
  stop: AgentEvent | null = null;
  startRecords = 0;
  stopRecords = 0;
  readonly tamper: { what: string; detail: string | null; ts: string }[] = [];
  tamperCount = 0;

  private readonly limits: Limits;

  constructor(limits: Limits = DEFAULT_LIMITS) {
    this.limits = limits;
  }

  add(e: FoldEvent): void {
    switch (e.kind) {
      case "connect":
        this.n.connect += 1;
        this.addConnect(e);
        break;
      case "dns":
        this.n.dns += 1;
        this.addDns(e);
        break;
      case "exec":
        this.n.exec += 1;
        this.addExec(e);
        break;
      case "file":
        this.n.file += 1;
        this.addFile(e);
        break;
      case "agent":
        this.n.agent += 1;
        this.addAgent(e);
        break;
      case "tamper":
        this.n.tamper += 1;
        this.addTamper(e);
        break;
      case "exit":
        this.n.exit += 1;
        break;
    }
  }

  /** Events per kind, kinds never seen left out. */
  get counts(): Partial<Record<EventKind, number>> {
    const out: Partial<Record<EventKind, number>> = {};
    for (const [k, v] of Object.entries(this.n) as [EventKind, number][]) if (v > 0) out[k] = v;
    return out;
  }

  private overflowed(what: keyof Limits): void {
    this.overflow[what] = (this.overflow[what] ?? 0) + 1;
  }

  private addStep(entry: CountedSteps, step: string | null): void {
    const s = step ?? UNKNOWN_STEP;
    const set = entry.steps;
    // lastStep is in the set once the set has anything: before, it is only the placeholder.
    if (s === entry.lastStep && set.size > 0) return;
    if (set.has(s)) return;
    if (set.size >= this.limits.steps_per_entry) {
      this.overflowed("steps_per_entry");
      return;
    }
    const kept = own(s);
    set.add(kept);
    entry.lastStep = kept;
  }

  private addConnect(e: View<"connect">): void {
    const addr = normalizeAddr(e.addr);
    let list = this.destinations.get(addr);
    let d: DestState | undefined;
    if (list) {
      for (const x of list) {
        if (x.port === e.port && x.proto === e.proto) {
          d = x;
          break;
        }
      }
    }
    if (!d) {
      if (this.destinationCount >= this.limits.destinations) {
        this.overflowed("destinations");
        return;
      }
      const kept = own(addr);
      d = {
        addr: kept,
        port: e.port,
        proto: e.proto,
        family: e.family,
        verdicts: {},
        count: 0,
        failed: 0,
        steps: new Set(),
        lastStep: "",
        rules: new Set(),
        lastRule: "",
      };
      if (list) list.push(d);
      else {
        list = [d];
        this.destinations.set(kept, list);
      }
      this.destinationCount += 1;
    }
    d.count += 1;
    if (e.result !== null && e.result < 0) d.failed += 1;
    // Named stores, not one keyed by the verdict string (that was a tenth of addConnect).
    const v = d.verdicts;
    if (e.verdict === "allow") v.allow = (v.allow ?? 0) + 1;
    else if (e.verdict === "deny") v.deny = (v.deny ?? 0) + 1;
    else if (e.verdict === "audit") v.audit = (v.audit ?? 0) + 1;
    const rule = e.rule;
    if (
      rule !== undefined &&
      (rule !== d.lastRule || d.rules.size === 0) &&
      !d.rules.has(rule) &&
      d.rules.size < this.limits.steps_per_entry
    ) {
      d.lastRule = own(rule);
      d.rules.add(d.lastRule);
    }
    this.addStep(d, e.step);
  }

  private addDns(e: View<"dns">): void {
    const name = normalizeName(e.name);
    let n = this.dnsNames.get(name);
    if (!n) {
      if (this.dnsNames.size >= this.limits.dns_names) {
        this.overflowed("dns_names");
      } else {
        n = { count: 0, failed: 0, steps: new Set(), lastStep: "" };
        this.dnsNames.set(own(name), n);
      }
    }
    if (n) {
      n.count += 1;
      if (e.rcode !== undefined && e.rcode !== 0) n.failed += 1;
      this.addStep(n, e.step);
    }
    for (const answer of e.answers) {
      const addr = normalizeAddr(answer);
      let names = this.answerNames.get(addr);
      if (!names) {
        // Answers are bounded like destinations: only an address we could list can be named.
        if (this.answerNames.size >= this.limits.destinations * 4) {
          this.overflowed("destinations");
          continue;
        }
        names = new Set();
        this.answerNames.set(own(addr), names);
      }
      if (names.has(name)) continue;
      if (names.size >= this.limits.hostnames_per_addr) {
        this.overflowed("hostnames_per_addr");
        continue;
      }
      names.add(own(name));
    }
  }

  private addExec(e: View<"exec">): void {
    const arg1 = e.arg1;
    let byArg = this.execs.get(e.filename);
    let x = byArg?.get(arg1);
    if (!x) {
      if (this.execCount >= this.limits.execs) {
        this.overflowed("execs");
        return;
      }
      const kept = arg1 === null ? null : own(arg1);
      x = { binary: own(e.filename), arg1: kept, count: 0, steps: new Set(), lastStep: "" };
      if (!byArg) {
        byArg = new Map();
        this.execs.set(x.binary, byArg);
      }
      byArg.set(kept, x);
      this.execCount += 1;
    }
    x.count += 1;
    this.addStep(x, e.step);
  }

  private addFile(e: View<"file">): void {
    let byPath = this.files.get(e.rule);
    let f = byPath?.get(e.path);
    if (!f) {
      if (this.fileCount >= this.limits.files) {
        this.overflowed("files");
        return;
      }
      f = {
        path: own(e.path),
        rule: own(e.rule),
        count: 0,
        comms: new Set(),
        steps: new Set(),
        lastStep: "",
      };
      if (!byPath) {
        byPath = new Map();
        this.files.set(f.rule, byPath);
      }
      byPath.set(f.path, f);
      this.fileCount += 1;
    }
    f.count += 1;
    if (f.comms.size < this.limits.steps_per_entry && !f.comms.has(e.comm))
      f.comms.add(own(e.comm));
    this.addStep(f, e.step);
  }

  private addAgent(e: AgentEvent): void {
    if (e.event === "start") {
      this.startRecords += 1;
      this.start ??= e;
    } else {
      this.stopRecords += 1;
      this.stop ??= e;
    }
  }

  private addTamper(e: View<"tamper">): void {
    this.tamperCount += 1;
    if (this.tamper.length < MAX_TAMPER_EVENTS) {
      this.tamper.push({ what: e.what, detail: e.detail ?? null, ts: e.ts });
    }
  }

  egress(): Destination[] {
    const out: Destination[] = [];
    for (const d of [...this.destinations.values()].flat()) {
      out.push({
        addr: d.addr,
        port: d.port,
        proto: d.proto,
        family: d.family,
        hostnames: [...(this.answerNames.get(d.addr) ?? [])].sort(),
        verdict: strictest(d.verdicts),
        verdicts: d.verdicts,
        count: d.count,
        failed: d.failed,
        steps: [...d.steps].sort(),
        rules: [...d.rules].sort(),
      });
    }
    return out.sort(
      (a, b) =>
        b.count - a.count || cmp(a.addr, b.addr) || a.port - b.port || cmp(a.proto, b.proto),
    );
  }

  exec(): ExecSummaryEntry[] {
    const out: ExecSummaryEntry[] = [];
    for (const x of [...this.execs.values()].flatMap((m) => [...m.values()])) {
      out.push({
        binary: x.binary,
        arg1_sha256: x.arg1 === null ? null : sha256Utf8(x.arg1),
        count: x.count,
        steps: [...x.steps].sort(),
      });
    }
    return out.sort(
      (a, b) =>
        b.count - a.count ||
        cmp(a.binary, b.binary) ||
        cmp(a.arg1_sha256 ?? "", b.arg1_sha256 ?? ""),
    );
  }

  dns(): DnsName[] {
    const out: DnsName[] = [];
    for (const [name, n] of this.dnsNames) {
      out.push({ name, count: n.count, failed: n.failed, steps: [...n.steps].sort() });
    }
    return out.sort((a, b) => b.count - a.count || cmp(a.name, b.name));
  }

  sensitiveFiles(): SensitiveFile[] {
    const out: SensitiveFile[] = [];
    for (const f of [...this.files.values()].flatMap((m) => [...m.values()])) {
      out.push({
        path: f.path,
        rule: f.rule,
        count: f.count,
        comms: [...f.comms].sort(),
        steps: [...f.steps].sort(),
      });
    }
    return out.sort((a, b) => b.count - a.count || cmp(a.path, b.path) || cmp(a.rule, b.rule));
  }
}

/**
 * A copy of s that shares no memory with it. The fast path's strings are slices of the 64 KiB
 * text of a whole run of lines (V8 slices strings of 13+ characters): one kept in a collection
 * would keep its run alive, and thousands of distinct names could hold much of the log in RSS.
 * Called only when a string is kept (bounded by Limits), not per event.
 */
export function own(s: string): string {
  // UTF-16 code units both ways: exact for any string, a lone surrogate from a \ud800 escape too.
  return Buffer.from(s, "utf16le").toString("utf16le");
}

/** SHA-256 (lowercase hex) of the UTF-8 encoding of s: what `arg1_sha256` means. */
export function sha256Utf8(s: string): string {
  return createHash("sha256").update(s, "utf8").digest("hex");
}

function strictest(v: Partial<Record<Verdict, number>>): Verdict | null {
  let best: Verdict | null = null;
  for (const k of Object.keys(v) as Verdict[]) {
    if (best === null || VERDICT_RANK[k] > VERDICT_RANK[best]) best = k;
  }
  return best;
}

// IPv6 text may differ in case between the DNS and connect paths; the agent already writes
// mapped addresses as IPv4 (schema), so case is the only normalisation needed for the join.
function normalizeAddr(a: string): string {
  return a.includes(":") ? a.toLowerCase() : a;
}

// DNS names are case-insensitive and may carry the root dot.
function normalizeName(n: string): string {
  const lower = n.toLowerCase();
  return lower.endsWith(".") && lower.length > 1 ? lower.slice(0, -1) : lower;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
