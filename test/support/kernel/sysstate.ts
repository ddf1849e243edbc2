// What the agent may leave behind in the kernel and the mount table, observed from outside:
// BPF programs and links (and whether a live process still holds them), pins in every bpffs,
// and mounts of bpffs, tracefs, debugfs and cgroup2.
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { run } from "./proc.js";

export interface SysState {
  progs: Map<number, string>; // id -> "type name"
  links: Map<number, string>;
  ownedProgs: Set<number>; // held by an fd (prog or link) of a live process
  ownedLinks: Set<number>;
  pins: string[];
  mounts: string[]; // "fstype mountpoint"
}

const TRACKED_FS = new Set(["bpf", "tracefs", "debugfs", "cgroup2"]);

export function trackedMounts(): string[] {
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const mountpoint = line.slice(0, sep).split(" ")[4];
    const fstype = line.slice(sep + 3).split(" ")[0];
    if (fstype && mountpoint && TRACKED_FS.has(fstype)) out.push(`${fstype} ${mountpoint}`);
  }
  return out.sort();
}

export function bpffsMounts(): string[] {
  return trackedMounts()
    .filter((m) => m.startsWith("bpf "))
    .map((m) => m.slice(4));
}

function walk(dir: string, out: string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = join(dir, n);
    out.push(p);
    try {
      if (statSync(p).isDirectory()) walk(p, out);
    } catch {}
  }
}

export function pins(): string[] {
  const out: string[] = [];
  for (const m of bpffsMounts()) walk(m, out);
  return out.sort();
}

/** Pins under any bpffs whose name says they are dpndncy's and that no live agent owns. */
export function ourPins(): string[] {
  const all = pins();
  const live = livePinDirs(all);
  return all.filter((p) => /dpndncy/i.test(p) && !ownedByLiveAgent(p, live));
}

function ownership(): { progs: Set<number>; links: Set<number> } {
  const progs = new Set<number>();
  const links = new Set<number>();
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!target.startsWith("anon_inode:bpf")) continue;
      let info: string;
      try {
        info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
      } catch {
        continue;
      }
      const prog = /^prog_id:\s*(\d+)/m.exec(info);
      if (prog?.[1]) progs.add(Number(prog[1]));
      const link = /^link_id:\s*(\d+)/m.exec(info);
      if (link?.[1]) links.add(Number(link[1]));
    }
  }
  return { progs, links };
}

async function bpftoolList(what: "prog" | "link"): Promise<Map<number, string>> {
  const r = await run(["bpftool", what, "show", "-j"], { timeoutMs: 30_000 });
  const m = new Map<number, string>();
  if (r.code !== 0) throw new Error(`bpftool ${what} show failed: ${r.stderr}`);
  const text = r.stdout.trim();
  if (text === "") return m;
  const arr = JSON.parse(text) as Array<Record<string, unknown>>;
  for (const o of arr) {
    const id = Number(o.id);
    m.set(id, `${String(o.type ?? "?")} ${String(o.name ?? o.prog_id ?? "")}`.trim());
  }
  return m;
}

/** Names of the programs that some link attaches right now (a loaded program need not be). */
export async function linkedProgNames(): Promise<string[]> {
  const r = await run(["bpftool", "link", "show", "-j"], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`bpftool link show failed: ${r.stderr}`);
  const links = JSON.parse(r.stdout.trim() || "[]") as Array<{ prog_id?: number }>;
  const p = await run(["bpftool", "prog", "show", "-j"], { timeoutMs: 30_000 });
  if (p.code !== 0) throw new Error(`bpftool prog show failed: ${p.stderr}`);
  const progs = JSON.parse(p.stdout.trim() || "[]") as Array<{ id: number; name?: string }>;
  const name = new Map(progs.map((x) => [x.id, x.name ?? ""]));
  return links.map((l) => name.get(Number(l.prog_id)) ?? "").filter((n) => n !== "");
}

export async function snapshot(): Promise<SysState> {
  const [progs, links] = await Promise.all([bpftoolList("prog"), bpftoolList("link")]);
  const own = ownership();
  return {
    progs,
    links,
    ownedProgs: own.progs,
    ownedLinks: own.links,
    pins: pins(),
    mounts: trackedMounts(),
  };
}

/**
 * Pin directories of agents that are alive right now (the agent pins under
 * <bpffs>/dpndncy/<pid>/): a running agent owns them, so they are not leaks — the agent of
 * a test has always exited or been stopped and checked dead before its leaks are looked at.
 */
function livePinDirs(pinList: string[]): string[] {
  const dirs = new Set<string>();
  for (const p of pinList) {
    const m = /^(.*\/dpndncy\/(\d+))(\/|$)/.exec(p);
    if (m?.[1] && m[2] && existsSync(`/proc/${m[2]}`)) dirs.add(m[1]);
  }
  return [...dirs];
}

function ownedByLiveAgent(p: string, live: string[]): boolean {
  return (
    live.some((d) => p === d || p.startsWith(`${d}/`)) ||
    // the shared parent directory and the bpffs itself, while some agent lives in them
    (live.length > 0 && (/\/dpndncy$/.test(p) || /\/(maps|progs)\.debug$/.test(p)))
  );
}

/** What appeared between two snapshots and is not held by any live process. */
export function leaks(before: SysState, after: SysState): string[] {
  const out: string[] = [];
  const live = livePinDirs(after.pins);
  for (const [id, desc] of after.progs) {
    if (!before.progs.has(id) && !after.ownedProgs.has(id)) {
      out.push(`BPF program ${id} (${desc}) left loaded, held by no process (pinned or attached)`);
    }
  }
  for (const [id, desc] of after.links) {
    if (!before.links.has(id) && !after.ownedLinks.has(id)) {
      out.push(`BPF link ${id} (${desc}) left behind, held by no process`);
    }
  }
  const pinsBefore = new Set(before.pins);
  for (const p of after.pins)
    if (!pinsBefore.has(p) && !ownedByLiveAgent(p, live)) out.push(`new pin ${p}`);
  const mountsBefore = new Set(before.mounts);
  for (const m of after.mounts) {
    if (mountsBefore.has(m)) continue;
    if (m.startsWith("bpf ") && live.some((d) => d.startsWith(`${m.slice(4)}/`))) continue;
    out.push(`new mount: ${m}`);
  }
  return out;
}

/**
 * Takes snapshots until nothing leaked relative to `before` (program teardown is RCU-deferred,
 * so a just-closed program can linger for a moment) or the grace period ends.
 */
export async function leaksSettled(before: SysState, graceMs = 2000): Promise<string[]> {
  const deadline = Date.now() + graceMs;
  for (;;) {
    const l = leaks(before, await snapshot());
    if (l.length === 0 || Date.now() > deadline) return l;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether dpndncy pins are left that no running agent owns (a dead or stopped agent's). */
export function bpffsHasDpndncy(): boolean {
  return ourPins().length > 0;
}
