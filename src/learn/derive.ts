/**
 * From a baseline to the policy enforce mode needs (schema/policy.v1.json), and its YAML.
 *
 * Rules (README "Learn mode"):
 * - names wherever a name was seen; an IP only for a destination never reached through a name
 *   (a /32 or /128: a job's few literal addresses say nothing about the network around them,
 *   so no wider CIDR is guessed);
 * - `*.domain` only when at least WILDCARD_MIN distinct names below one registrable domain
 *   (Public Suffix List, private section included, so `*.github.io` or `*.s3.amazonaws.com`
 *   can never be produced: a wildcard never spans tenants of a shared platform). Two names
 *   are often just `www` + `api`; three or more is a pattern (CDN shards, per-package hosts)
 *   where listing names would never become stable. The registrable domain itself stays as its
 *   own entry when it was seen, since `*.d` does not match `d`;
 * - a port only when every sighting of the destination (all of a wildcard's names) used the
 *   same single port;
 * - excluded: loopback (never learned), DNS (port 53: enforce only lets it reach the
 *   sanctioned resolvers, `dns.resolvers`, whatever egress.allow says), and the cloud metadata
 *   addresses (enforce denies them before the allowlist; allowing them is the explicit
 *   `egress.allow-metadata`, never learned). The excluded ones are listed as comments.
 * - output sorted: names by registrable domain then name, then IPv4, then IPv6.
 */
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import { getDomain } from "tldts";
import { Document } from "yaml";
import { canonicalJson, type Policy } from "../policy/load.js";
import type { Baseline, BaselineEntry } from "./baseline.js";

export const WILDCARD_MIN = 3;
export const METADATA_ADDRS = new Set(["169.254.169.254", "169.254.170.2", "fd00:ec2::254"]);

export interface Derivation {
  policy: Policy;
  /** Destinations seen but deliberately not in egress.allow, with why. */
  excluded: { key: string; why: string }[];
  /** Wildcards formed, with the names they replace. */
  wildcards: { pattern: string; names: string[] }[];
}

const stablePort = (ports: number[], overflow?: boolean): number | undefined =>
  !overflow && ports.length === 1 && ports[0] !== undefined && ports[0] > 0 ? ports[0] : undefined;

function registrable(name: string): string | null {
  return getDomain(name, { allowPrivateDomains: true }) ?? null;
}

function ipSortKey(ip: string): string {
  if (isIP(ip) === 4)
    return `4:${ip
      .split(".")
      .map((o) => o.padStart(3, "0"))
      .join(".")}`;
  return `6:${ip}`;
}

export function derive(baseline: Baseline): Derivation {
  const excluded: Derivation["excluded"] = [];
  const wildcards: Derivation["wildcards"] = [];
  const names: BaselineEntry[] = [];
  const ips: BaselineEntry[] = [];
  for (const e of baseline.destinations) {
    if (e.ports.length > 0 && e.ports.every((p) => p === 53) && !e.ports_overflow) {
      excluded.push({
        key: e.key,
        why: "DNS (port 53): reachable only as a sanctioned resolver (dns.resolvers)",
      });
    } else if (e.kind === "ip" && METADATA_ADDRS.has(e.key)) {
      excluded.push({
        key: e.key,
        why: "cloud metadata endpoint: set egress.allow-metadata: true only if the job needs it",
      });
    } else (e.kind === "name" ? names : ips).push(e);
  }

  // group names below one registrable domain
  const groups = new Map<string, BaselineEntry[]>();
  for (const e of names) {
    const d = registrable(e.key);
    if (d && d !== e.key) groups.set(d, [...(groups.get(d) ?? []), e]);
  }
  const covered = new Set<string>();
  const rows: { sort: string; text: string }[] = [];
  for (const [domain, members] of groups) {
    if (members.length < WILDCARD_MIN) continue;
    const ports = [...new Set(members.flatMap((m) => m.ports))];
    const port = stablePort(
      ports,
      members.some((m) => m.ports_overflow),
    );
    const pattern = `*.${domain}${port ? `:${port}` : ""}`;
    wildcards.push({ pattern, names: members.map((m) => m.key).sort() });
    for (const m of members) covered.add(m.key);
    rows.push({ sort: `${domain}\u0000`, text: pattern });
  }
  for (const e of names) {
    if (covered.has(e.key)) continue;
    const port = stablePort(e.ports, e.ports_overflow);
    rows.push({
      sort: `${registrable(e.key) ?? e.key}\u0000${e.key}`,
      text: `${e.key}${port ? `:${port}` : ""}`,
    });
  }
  const sortRows = (a: { sort: string }, b: { sort: string }) =>
    a.sort < b.sort ? -1 : a.sort > b.sort ? 1 : 0;
  rows.sort(sortRows);
  const ipRows = ips
    .map((e) => {
      const port = stablePort(e.ports, e.ports_overflow);
      const text = port ? (isIP(e.key) === 6 ? `[${e.key}]:${port}` : `${e.key}:${port}`) : e.key;
      return { sort: ipSortKey(e.key), text };
    })
    .sort(sortRows);
  return {
    policy: { version: 1, egress: { allow: [...rows, ...ipRows].map((r) => r.text) } },
    excluded: excluded.sort((a, b) => (a.key < b.key ? -1 : 1)),
    wildcards: wildcards.sort((a, b) => (a.pattern < b.pattern ? -1 : 1)),
  };
}

/** The enforce-ready policy learned from a baseline (deterministic). */
export function derivePolicy(baseline: Baseline): Policy {
  return derive(baseline).policy;
}

/** The policy's version, exactly as src/policy/load.ts computes it (comments do not count). */
export function policySha256(policy: Policy): string {
  return createHash("sha256").update(canonicalJson(policy)).digest("hex");
}

export interface RenderContext {
  /** Jobs the baseline learned from. */
  jobs: number;
  stable?: boolean;
  excluded?: Derivation["excluded"];
  wildcards?: Derivation["wildcards"];
}

/** The policy as YAML with a header saying where it came from; parses back with parsePolicy. */
export function renderPolicyYaml(policy: Policy, ctx: RenderContext): string {
  const doc = new Document(policy);
  const header = [
    ` Generated by dpndncy learn from ${ctx.jobs} job${ctx.jobs === 1 ? "" : "s"}${
      ctx.stable === undefined ? "" : ctx.stable ? " (stable)" : " (not stable yet)"
    }; edit freely, review before enforcing.`,
    ` policy sha256 ${policySha256(policy)}`,
    " Names are allowed only for the addresses the job itself resolved them to (enforce mode).",
  ];
  for (const w of ctx.wildcards ?? []) header.push(` ${w.pattern} replaces ${w.names.join(", ")}`);
  for (const x of ctx.excluded ?? []) header.push(` not listed: ${x.key} (${x.why})`);
  doc.commentBefore = header.join("\n");
  return doc.toString({ lineWidth: 0 });
}
