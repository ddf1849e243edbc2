/**
 * daemon.yml: parsed with a real YAML parser, validated against schema/daemon.v1.json, then
 * the checks a schema cannot make (IP addresses, the cgroup, the metrics address). Every error
 * names FILE:LINE:COLUMN of the offending value. Relative paths are resolved against the
 * directory of daemon.yml; defaults are filled in here, so the rest of the daemon sees one
 * complete, typed configuration.
 */
import { existsSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, join, normalize, resolve } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import schema from "../../schema/daemon.v1.json" with { type: "json" };
import { DEFAULT_JOB_MARKERS } from "../platform/detect.js";
import { parseLocated } from "../yaml/located.js";

/** daemon.yml as written (schema/daemon.v1.json). */
export interface DaemonFile {
  agent?: string;
  mode?: "observe" | "enforce";
  jobsDir: string;
  stateDir?: string;
  policyDir?: string;
  cgroup?: string;
  jobIdleSeconds?: number;
  jobMarkers?: string[];
  dnsResolvers?: string[];
  allowMetadata?: boolean;
  metrics?: { listen: string };
  webhook?: {
    url: string;
    secretFile: string;
    timeoutMs?: number;
    maxAttempts?: number;
    queueLimit?: number;
  };
  signing?: {
    key?: string;
    identityTokenFile?: string;
    fulcioUrl?: string;
    rekorUrl?: string;
    tsaUrl?: string;
  };
  stdout?: boolean;
}

export type Signing =
  | { kind: "key"; key: string }
  | {
      kind: "keyless";
      identityTokenFile: string;
      fulcioUrl: string;
      rekorUrl?: string;
      tsaUrl?: string;
    };

/** The configuration with every default filled in and every path absolute. */
export interface DaemonConfig {
  file: string;
  /** As written; undefined: look for it (src/daemon/agent-config.ts findAgent). */
  agent?: string;
  mode: "observe" | "enforce";
  jobsDir: string;
  stateDir: string;
  policyDir?: string;
  cgroup?: string;
  jobIdleSeconds: number;
  jobMarkers: string[];
  dnsResolvers: string[];
  allowMetadata: boolean;
  metrics?: { host: string; port: number };
  webhook?: {
    url: string;
    secretFile: string;
    timeoutMs: number;
    maxAttempts: number;
    queueLimit: number;
  };
  signing?: Signing;
  stdout: boolean;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const validateFile = new Ajv2020({
  allErrors: false,
  strict: true,
  strictRequired: false,
}).compile<DaemonFile>(schema);

/** The cgroup v2 mount points (unified, and the hybrid layout's unified). */
const CGROUP_ROOTS = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

/** "host:port", "[v6]:port": the address to bind. */
export function parseListen(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? m[2] ?? "";
  if (m[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}

/**
 * A cgroup v2 root must never be the enforce cgroup (it would judge the whole host, runner and
 * sshd included). Known mount points by name; any other mounted root by its files: only a
 * non-root cgroup has cgroup.type.
 */
export function isCgroupRoot(path: string, exists: (p: string) => boolean = existsSync): boolean {
  const p = normalize(path).replace(/\/+$/, "") || "/";
  if (p === "/" || CGROUP_ROOTS.includes(p)) return true;
  return exists(join(p, "cgroup.controllers")) && !exists(join(p, "cgroup.type"));
}

export function parseDaemonConfig(text: string, file: string): DaemonConfig {
  const { doc, at, where } = parseLocated(text, file, (m) => new ConfigError(m));
  const value: unknown = doc.toJS() ?? {};
  if (!validateFile(value)) {
    const err = validateFile.errors?.[0];
    const path = (err?.instancePath ?? "").split("/").filter(Boolean);
    const name = path.length ? path.join(".") : "daemon.yml";
    let message = `${name} ${err?.message ?? "is invalid"}`;
    if (err?.keyword === "additionalProperties") {
      const key = (err.params as { additionalProperty: string }).additionalProperty;
      const map = (path.length ? doc.getIn(path, true) : doc.contents) as {
        items?: { key?: { value?: unknown; range?: [number, number, number] } }[];
      } | null;
      const pair = map?.items?.find((i) => i.key?.value === key);
      const pos = pair?.key?.range ? at(pair.key.range[0]) : where(path);
      throw new ConfigError(`${pos}: ${name}: unknown key "${key}"`);
    }
    if (err?.keyword === "required") {
      const missing = (err.params as { missingProperty: string }).missingProperty;
      message =
        missing === "cgroup" && path.length === 0
          ? `mode enforce needs cgroup (the cgroup the jobs run under)`
          : `${name} needs "${missing}"`;
    }
    if (path[0] === "signing" && (err?.keyword === "oneOf" || err?.keyword === "not")) {
      message =
        "signing: give either key, or identityTokenFile with fulcioUrl and rekorUrl or tsaUrl (a fleet may run private repositories, so there is no default Sigstore instance)";
    }
    throw new ConfigError(`${where(path)}: ${message}`);
  }
  const f = value;
  const base = dirname(resolve(file));
  const abs = (p: string) => resolve(base, p);

  for (const [i, r] of (f.dnsResolvers ?? []).entries()) {
    if (isIP(r) === 0)
      throw new ConfigError(
        `${where(["dnsResolvers", i])}: dnsResolvers: "${r}" is not an IP address`,
      );
  }
  let metrics: DaemonConfig["metrics"];
  if (f.metrics) {
    metrics = parseListen(f.metrics.listen);
    if (!metrics)
      throw new ConfigError(
        `${where(["metrics", "listen"])}: metrics.listen: "${f.metrics.listen}" is not host:port (IPv6 in brackets)`,
      );
  }
  if (f.webhook) {
    try {
      new URL(f.webhook.url);
    } catch {
      throw new ConfigError(
        `${where(["webhook", "url"])}: webhook.url: "${f.webhook.url}" is not a URL`,
      );
    }
  }
  const cgroup = f.cgroup === undefined ? undefined : abs(f.cgroup);
  if (cgroup !== undefined && isCgroupRoot(cgroup)) {
    throw new ConfigError(
      `${where(["cgroup"])}: cgroup: ${cgroup} is a cgroup v2 root; name the cgroup the jobs run under (the runner's service, system.slice for Docker, kubepods.slice)`,
    );
  }
  const jobsDir = abs(f.jobsDir);
  const s = f.signing;
  const signing: Signing | undefined = !s
    ? undefined
    : s.key !== undefined
      ? { kind: "key", key: abs(s.key) }
      : {
          kind: "keyless",
          identityTokenFile: abs(s.identityTokenFile ?? ""),
          fulcioUrl: s.fulcioUrl ?? "",
          ...(s.rekorUrl ? { rekorUrl: s.rekorUrl } : {}),
          ...(s.tsaUrl ? { tsaUrl: s.tsaUrl } : {}),
        };
  return {
    file: resolve(file),
    ...(f.agent !== undefined ? { agent: abs(f.agent) } : {}),
    mode: f.mode ?? "observe",
    jobsDir,
    stateDir: f.stateDir !== undefined ? abs(f.stateDir) : join(jobsDir, ".dpndncy-daemon"),
    ...(f.policyDir !== undefined ? { policyDir: abs(f.policyDir) } : {}),
    ...(cgroup !== undefined ? { cgroup } : {}),
    jobIdleSeconds: f.jobIdleSeconds ?? 10,
    jobMarkers: f.jobMarkers ?? [...DEFAULT_JOB_MARKERS],
    dnsResolvers: f.dnsResolvers ?? [],
    allowMetadata: f.allowMetadata === true,
    ...(metrics ? { metrics } : {}),
    ...(f.webhook
      ? {
          webhook: {
            url: f.webhook.url,
            secretFile: abs(f.webhook.secretFile),
            timeoutMs: f.webhook.timeoutMs ?? 5000,
            maxAttempts: f.webhook.maxAttempts ?? 8,
            queueLimit: f.webhook.queueLimit ?? 10000,
          },
        }
      : {}),
    ...(signing ? { signing } : {}),
    stdout: f.stdout ?? true,
  };
}

export function loadDaemonConfig(file: string): DaemonConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(
      `${file}: cannot read daemon config: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return parseDaemonConfig(text, file);
}
