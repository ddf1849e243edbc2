/**
 * Learn mode's memory between jobs (DESIGN §3): every egress destination a job of this
 * workflow reached, keyed by the name it was reached through (or its IP when no name was ever
 * seen for it), with the ports and protocols used and in which of the last N jobs it appeared.
 * Pure: the predicate goes in, a new baseline comes out; persistence is the caller's (the
 * action's cache adapter, the CLI's file).
 *
 * A baseline read from outside is never trusted: parseBaseline validates every field and a
 * corrupt or unknown-version file is reported and replaced by an empty one.
 */
import { isIP } from "node:net";
import { parseEndpoint } from "../policy/endpoint.js";
import type { Destination, Predicate } from "../trace/types.js";

export const BASELINE_FORMAT = "dpndncy-learn-baseline";
export const BASELINE_VERSION = 1;
/** Ports remembered per destination; past this many the destination has no stable port anyway. */
export const MAX_PORTS = 8;
/** Steps remembered per destination (for the summary). */
export const MAX_STEPS = 16;
/** New keys listed per job record. */
export const MAX_NEW_LISTED = 32;
/** Destinations kept (the agent's enforce table holds 4096 entries); least recently seen go first. */
export const MAX_DESTINATIONS = 4096;
export const MAX_WINDOW = 100;

export type Proto = "tcp" | "udp" | "other";

export interface Sighting {
  job: string;
  at: string | null;
}

export interface BaselineEntry {
  /** A lower-case FQDN without trailing dot, or an IP address (never named in the sightings). */
  key: string;
  kind: "name" | "ip";
  /** Distinct ports seen, ascending, at most MAX_PORTS (then ports_overflow). */
  ports: number[];
  ports_overflow?: true;
  proto: Proto[];
  /** In how many merged jobs (ever) it appeared. */
  jobs: number;
  /** Which of the baseline's last-N jobs (Baseline.jobs) it appeared in, oldest first. */
  recent: string[];
  first_seen: Sighting;
  last_seen: Sighting;
  steps: string[];
}

export interface JobRecord {
  id: string;
  at: string | null;
  /** Keys (or key:port) this job added, capped at MAX_NEW_LISTED; new_count is the full number. */
  new: string[];
  new_count: number;
}

export interface Baseline {
  format: typeof BASELINE_FORMAT;
  version: typeof BASELINE_VERSION;
  /** N: how many jobs the ring keeps. */
  window: number;
  /** Jobs merged in total. */
  total_jobs: number;
  /** Ring of the last `window` jobs, oldest first. */
  jobs: JobRecord[];
  /** Sorted by key. */
  destinations: BaselineEntry[];
}

export function emptyBaseline(window = 5): Baseline {
  return {
    format: BASELINE_FORMAT,
    version: BASELINE_VERSION,
    window: checkWindow(window),
    total_jobs: 0,
    jobs: [],
    destinations: [],
  };
}

function checkWindow(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_WINDOW) {
    throw new RangeError(`the learn window must be an integer 1-${MAX_WINDOW}, got ${n}`);
  }
  return n;
}

// ---- classification of a destination ----

const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** Canonical IP text: IPv4-mapped IPv6 becomes IPv4, IPv6 lower case. */
export function canonicalAddr(addr: string): string {
  const m = V4_MAPPED.exec(addr);
  return m?.[1] ?? addr.toLowerCase();
}

/** Loopback and unspecified addresses: always allowed (or meaningless), never learned. */
export function isLocalAddr(addr: string): boolean {
  const a = canonicalAddr(addr);
  if (isIP(a) === 4) return a.startsWith("127.") || a === "0.0.0.0";
  return a === "::1" || a === "::";
}

export function normaliseName(name: string): string | null {
  const n = name.trim().toLowerCase().replace(/\.$/, "");
  if (n === "" || isIP(n) !== 0 || n === "localhost" || n.endsWith(".localhost")) return null;
  try {
    const e = parseEndpoint(n);
    return e.kind === "host" && !e.wildcard && e.port === undefined ? e.host : null;
  } catch {
    return null; // e.g. `_service.example.com`: not expressible in a policy
  }
}

/**
 * The baseline keys one predicate destination contributes: every valid name its address was
 * resolved from (the connect cannot tell which of them the process asked for, and allowing all
 * keeps the workload passing), else the address itself. None for loopback, nor for connects the
 * agent denied unless `denied` (enforce mode must not learn what it blocked, but flags it).
 */
export function destinationKeys(
  d: Destination,
  opts: { denied?: boolean } = {},
): { key: string; kind: "name" | "ip" }[] {
  if ((d.verdict === "deny" && !opts.denied) || isLocalAddr(d.addr)) return [];
  const names = [...new Set(d.hostnames.map(normaliseName).filter((n): n is string => n !== null))];
  if (names.length > 0) return names.sort().map((key) => ({ key, kind: "name" as const }));
  return [{ key: canonicalAddr(d.addr), kind: "ip" }];
}

// ---- merge ----

const byKey = (a: { key: string }, b: { key: string }) =>
  a.key < b.key ? -1 : a.key > b.key ? 1 : 0;

const sortedUnion = <T extends string | number>(a: readonly T[], b: readonly T[]): T[] =>
  [...new Set([...a, ...b])].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));

/** The job's timestamp as recorded in the log (agent start, else stop). */
export function jobTime(p: Predicate): string | null {
  return p.agent.started ?? p.agent.stopped ?? null;
}

export interface MergeResult {
  baseline: Baseline;
  /** False when jobId was already in the ring (merging the same job twice changes nothing). */
  merged: boolean;
  /** What this job added: new keys, and `key:port` / `key/proto` for new ports and protocols. */
  added: string[];
}

/**
 * Folds one job's egress into the baseline. Pure: the input is not modified. Re-merging a job
 * id still in the ring is a no-op, so re-running the CLI on the same logs is idempotent.
 */
export function mergeBaseline(
  baseline: Baseline,
  predicate: Predicate,
  jobId: string,
  window: number,
): MergeResult {
  const n = checkWindow(window);
  if (baseline.jobs.some((j) => j.id === jobId)) {
    return { baseline: resize(baseline, n), merged: false, added: [] };
  }
  const at = jobTime(predicate);
  const sighting: Sighting = { job: jobId, at };
  const entries = new Map(baseline.destinations.map((e) => [e.key, structuredClone(e)]));
  const added: string[] = [];
  const touched = new Set<string>();

  for (const d of predicate.egress) {
    for (const { key, kind } of destinationKeys(d)) {
      const steps = d.steps.slice(0, MAX_STEPS);
      let e = entries.get(key);
      if (!e) {
        e = {
          key,
          kind,
          ports: [],
          proto: [],
          jobs: 0,
          recent: [],
          first_seen: sighting,
          last_seen: sighting,
          steps: [],
        };
        entries.set(key, e);
        added.push(key);
      } else if (!e.ports_overflow && !e.ports.includes(d.port) && !added.includes(key)) {
        added.push(`${key}:${d.port}`);
      } else if (!e.proto.includes(d.proto) && !added.includes(key)) {
        added.push(`${key}/${d.proto}`);
      }
      if (!e.ports.includes(d.port)) {
        if (e.ports.length < MAX_PORTS) e.ports = sortedUnion(e.ports, [d.port]);
        else e.ports_overflow = true;
      }
      e.proto = sortedUnion(e.proto, [d.proto]);
      e.steps = sortedUnion(e.steps, steps).slice(0, MAX_STEPS);
      if (!touched.has(key)) {
        touched.add(key);
        e.jobs += 1;
        e.recent = [...e.recent, jobId];
        e.last_seen = sighting;
      }
    }
  }

  const uniqueAdded = [...new Set(added)];
  const record: JobRecord = {
    id: jobId,
    at,
    new: uniqueAdded.slice(0, MAX_NEW_LISTED),
    new_count: uniqueAdded.length,
  };
  let destinations = [...entries.values()];
  if (destinations.length > MAX_DESTINATIONS) {
    destinations = destinations
      .sort((a, b) => (a.last_seen.at ?? "").localeCompare(b.last_seen.at ?? "") || byKey(a, b))
      .slice(destinations.length - MAX_DESTINATIONS);
  }
  const next: Baseline = {
    ...baseline,
    total_jobs: baseline.total_jobs + 1,
    jobs: [...baseline.jobs, record],
    destinations: destinations.sort(byKey),
  };
  return { baseline: resize(next, n), merged: true, added: uniqueAdded };
}

/** Keep the last `window` jobs and drop job ids no longer in the ring from every entry. */
function resize(b: Baseline, window: number): Baseline {
  const jobs = b.jobs.slice(Math.max(0, b.jobs.length - window));
  const ids = new Set(jobs.map((j) => j.id));
  return {
    ...b,
    window,
    jobs,
    destinations: b.destinations.map((e) => ({ ...e, recent: e.recent.filter((j) => ids.has(j)) })),
  };
}

// ---- stability ----

export interface Stability {
  stable: boolean;
  /** Consecutive most recent jobs that added nothing. */
  quiet: number;
  window: number;
  jobs: number;
  /** Human sentence for the summary and the CLI. */
  reason: string;
}

/** Stable when each of the last N merged jobs added nothing new (so it takes N+1 jobs at least). */
export function stability(baseline: Baseline, window: number): Stability {
  const n = checkWindow(window);
  let quiet = 0;
  for (let i = baseline.jobs.length - 1; i >= 0 && baseline.jobs[i]?.new_count === 0; i--) quiet++;
  const stable = quiet >= n && baseline.total_jobs > n;
  const jobs = baseline.total_jobs;
  const reason = stable
    ? `stable: the last ${n} jobs added nothing new (${jobs} jobs learned)`
    : jobs === 0
      ? "no job learned yet"
      : `not stable yet: ${quiet} of the last ${n} jobs added nothing new (needs ${n} in a row; ${jobs} job${jobs === 1 ? "" : "s"} learned)`;
  return { stable, quiet: Math.min(quiet, n), window: n, jobs, reason };
}

// ---- parsing an untrusted baseline ----

export class BaselineError extends Error {
  override name = "BaselineError";
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === "string";
const isStrArr = (v: unknown): v is string[] => Array.isArray(v) && v.every(isStr);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isSighting = (v: unknown): v is Sighting =>
  isObj(v) && isStr(v.job) && (v.at === null || isStr(v.at));

function checkEntry(e: unknown, i: number): BaselineEntry {
  const bad = (what: string) => new BaselineError(`destinations[${i}]: ${what}`);
  if (!isObj(e)) throw bad("not an object");
  if (!isStr(e.key)) throw bad("key is not a string");
  if (e.kind === "name") {
    if (normaliseName(e.key) !== e.key) throw bad(`"${e.key}" is not a host name`);
  } else if (e.kind === "ip") {
    if (isIP(e.key) === 0) throw bad(`"${e.key}" is not an IP address`);
  } else throw bad("kind is not name or ip");
  if (
    !Array.isArray(e.ports) ||
    e.ports.length > MAX_PORTS ||
    !e.ports.every((p) => Number.isInteger(p) && p >= 0 && p <= 65535)
  )
    throw bad("ports are not a list of ports");
  if (e.ports_overflow !== undefined && e.ports_overflow !== true)
    throw bad("ports_overflow is not true");
  if (!Array.isArray(e.proto) || !e.proto.every((p) => p === "tcp" || p === "udp" || p === "other"))
    throw bad("proto is not a list of tcp/udp/other");
  if (!isCount(e.jobs)) throw bad("jobs is not a count");
  if (!isStrArr(e.recent)) throw bad("recent is not a list of job ids");
  if (!isSighting(e.first_seen) || !isSighting(e.last_seen)) throw bad("first/last_seen malformed");
  if (!isStrArr(e.steps)) throw bad("steps is not a list");
  return {
    key: e.key,
    kind: e.kind,
    ports: [...new Set(e.ports as number[])].sort((a, b) => a - b),
    ...(e.ports_overflow ? { ports_overflow: true as const } : {}),
    proto: [...new Set(e.proto as Proto[])].sort(),
    jobs: e.jobs,
    recent: e.recent,
    first_seen: { job: e.first_seen.job, at: e.first_seen.at },
    last_seen: { job: e.last_seen.job, at: e.last_seen.at },
    steps: e.steps.slice(0, MAX_STEPS),
  };
}

/** Validates a baseline read from a cache or file; throws BaselineError saying what is wrong. */
export function parseBaseline(text: string): Baseline {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new BaselineError(`not JSON (${(e as Error).message})`);
  }
  if (!isObj(v)) throw new BaselineError("not a JSON object");
  if (v.format !== BASELINE_FORMAT) throw new BaselineError(`not a ${BASELINE_FORMAT} file`);
  if (v.version !== BASELINE_VERSION) {
    throw new BaselineError(
      `unknown version ${JSON.stringify(v.version)} (this dpndncy reads version ${BASELINE_VERSION})`,
    );
  }
  if (!Number.isInteger(v.window) || (v.window as number) < 1 || (v.window as number) > MAX_WINDOW)
    throw new BaselineError("window is not 1-100");
  if (!isCount(v.total_jobs)) throw new BaselineError("total_jobs is not a count");
  if (!Array.isArray(v.jobs) || v.jobs.length > MAX_WINDOW)
    throw new BaselineError("jobs is not a list");
  const jobs = v.jobs.map((j, i): JobRecord => {
    if (
      !isObj(j) ||
      !isStr(j.id) ||
      !(j.at === null || isStr(j.at)) ||
      !isStrArr(j.new) ||
      !isCount(j.new_count)
    )
      throw new BaselineError(`jobs[${i}] malformed`);
    return { id: j.id, at: j.at, new: j.new.slice(0, MAX_NEW_LISTED), new_count: j.new_count };
  });
  if ((v.total_jobs as number) < jobs.length)
    throw new BaselineError("total_jobs is less than the jobs listed");
  if (!Array.isArray(v.destinations) || v.destinations.length > MAX_DESTINATIONS)
    throw new BaselineError("destinations is not a list (or too long)");
  const destinations = v.destinations.map(checkEntry);
  const keys = new Set(destinations.map((d) => d.key));
  if (keys.size !== destinations.length) throw new BaselineError("duplicate destination keys");
  return {
    format: BASELINE_FORMAT,
    version: BASELINE_VERSION,
    window: v.window as number,
    total_jobs: v.total_jobs as number,
    jobs,
    destinations: destinations.sort(byKey),
  };
}

export interface LoadedBaseline {
  baseline: Baseline;
  /** Set when the input existed but was rejected; the baseline is then a fresh one. */
  problem?: string;
}

/** parseBaseline that never throws: a bad baseline is reported and rebuilt from scratch. */
export function loadBaselineText(text: string | null, window: number): LoadedBaseline {
  if (text === null) return { baseline: emptyBaseline(window) };
  try {
    return { baseline: parseBaseline(text) };
  } catch (e) {
    if (!(e instanceof BaselineError)) throw e;
    return {
      baseline: emptyBaseline(window),
      problem: `the learn baseline is corrupt or of an unknown version (${e.message}); it is not trusted and is rebuilt from this job`,
    };
  }
}

export function serializeBaseline(b: Baseline): string {
  return `${JSON.stringify(b, null, 1)}\n`;
}
