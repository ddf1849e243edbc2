/**
 * Signs each closed job log exactly as `dpndncy attest` does (summarize, in-toto Statement,
 * DSSE, Sigstore bundle) and writes `<log>.sigstore.json` beside it. One job at a time, in
 * order, so a slow Rekor delays bundles instead of piling up requests. A failure is reported
 * and counted; it never stops the daemon and never touches the log.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { IdentityProvider } from "@sigstore/sign";
import {
  type Endpoints,
  loadPrivateKey,
  resolveEndpoints,
  signKeyless,
  signWithKey,
} from "../attest/sign.js";
import { buildStatement, serializeStatement } from "../attest/statement.js";
import { JOB_MARKERS } from "../platform/detect.js";
import { summarizeFile } from "../trace/summarize.js";
import type { CiIdentity } from "../trace/types.js";
import type { Signing } from "./config.js";
import type { JobStart } from "./control.js";
import type { DaemonMetrics } from "./metrics.js";

/** The bundle path `dpndncy attest FILE` writes by default. */
export const bundlePath = (log: string) => `${log}.sigstore.json`;

/** What a job's log is signed as: the platform its marker belongs to, its project and name. */
export function jobCi(job: string, start?: Pick<JobStart, "project" | "name">): CiIdentity {
  const eq = job.indexOf("=");
  const marker = eq > 0 ? job.slice(0, eq) : job;
  const spec = JOB_MARKERS.find((s) => s.marker === marker);
  return {
    platform: spec?.platform ?? "local",
    ...(start?.project ? { repository: start.project } : {}),
    jobId: eq > 0 ? job.slice(eq + 1) : job,
    ...(start?.name ? { jobName: start.name } : {}),
  };
}

type Sign = (payload: Buffer) => ReturnType<typeof signWithKey>;

export interface SignerSetup {
  sign: Sign;
  /** For the start-up message. */
  label: string;
  endpoints?: Endpoints;
}

/** A token file read at every signing (projected service-account tokens rotate). */
export function tokenFile(file: string): IdentityProvider {
  return {
    getToken: async () => {
      const t = (await readFile(file, "utf8")).trim();
      if (!t) throw new Error(`identity token file ${file} is empty`);
      return t;
    },
  };
}

/** A keyless token file that cannot be read now (a warning at start: it may appear later). */
export function tokenFileProblem(s: Signing): string | undefined {
  if (s.kind !== "keyless") return undefined;
  try {
    if (readFileSync(s.identityTokenFile, "utf8").trim() === "")
      return `signing.identityTokenFile ${s.identityTokenFile} is empty: signing will fail until it has a token`;
  } catch (e) {
    return `signing.identityTokenFile ${s.identityTokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}: signing will fail until it can be read`;
  }
  return undefined;
}

/** Checks the signing configuration at start-up (the key loads, the endpoints resolve). */
export function setupSigning(s: Signing): SignerSetup {
  if (s.kind === "key") {
    let pem: string;
    try {
      pem = readFileSync(s.key, "utf8");
    } catch (e) {
      throw new Error(
        `signing.key ${s.key}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    try {
      loadPrivateKey(pem);
    } catch (e) {
      throw new Error(`signing.key ${s.key}: ${(e as Error).message}`);
    }
    return { sign: (p) => signWithKey(p, { privateKeyPem: pem }), label: `key ${s.key}` };
  }
  // Named explicitly in daemon.yml, so even the public Rekor is the operator's choice.
  const endpoints = resolveEndpoints({
    private: true,
    fulcioURL: s.fulcioUrl,
    rekorURL: s.rekorUrl,
    tsaURL: s.tsaUrl,
    allowPublicRekor: true,
  });
  const identityProvider = tokenFile(s.identityTokenFile);
  return {
    sign: (p) => signKeyless(p, { endpoints, identityProvider }),
    label: `keyless (token ${s.identityTokenFile}, Fulcio ${endpoints.fulcioURL})`,
    endpoints,
  };
}

export interface SignedJob {
  job: string;
  log: string;
  bundle?: string;
  error?: string;
}

export class JobSigner {
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;

  constructor(
    private readonly setup: SignerSetup,
    private readonly o: {
      log: (line: string) => void;
      metrics?: DaemonMetrics;
      onSigned?: (r: SignedJob) => void;
    },
  ) {}

  get pending(): number {
    return this.queued;
  }

  /**
   * Queues a log; returns at once. `job` is the job key (`CI_JOB_ID=4711`), or `daemon` for the
   * agent's own host log; `start` gives the project and name.
   */
  enqueue(job: string, logPath: string, start?: Pick<JobStart, "project" | "name">): void {
    this.queued++;
    this.chain = this.chain.then(async () => {
      try {
        const r = await this.signOne(job, logPath, start);
        this.o.onSigned?.(r);
      } finally {
        this.queued--;
      }
    });
  }

  private async signOne(
    job: string,
    log: string,
    start?: Pick<JobStart, "project" | "name">,
  ): Promise<SignedJob> {
    try {
      // job-end's log_sha256 covers the bytes before the stop record, as the stop record's own
      // does: the summary checks that one (integrity), so there is nothing to compare here
      const predicate = await summarizeFile(log, { ci: jobCi(job, start) });
      const bundle = await this.setup.sign(serializeStatement(buildStatement(predicate)));
      const out = bundlePath(log);
      const tmp = join(dirname(out), `.${basename(out)}.tmp`);
      writeFileSync(tmp, `${JSON.stringify(bundle)}\n`, { mode: 0o644 });
      renameSync(tmp, out);
      this.o.metrics?.attestations.inc({ result: "ok" });
      return { job, log, bundle: out };
    } catch (e) {
      const msg = (e as Error).message;
      this.o.metrics?.attestations.inc({ result: "failed" });
      this.o.log(
        `dpndncy daemon: SIGNING FAILED for job ${job} (${log}): ${msg}; the log is kept unsigned`,
      );
      return { job, log, error: msg };
    }
  }

  /** Waits for the queue to empty, at most ms; resolves with how many jobs are left unsigned. */
  async drain(ms: number): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<"timeout">((r) => {
      timer = setTimeout(() => r("timeout"), ms);
    });
    const r = await Promise.race([this.chain, t]);
    clearTimeout(timer);
    return r === "timeout" ? this.queued : 0;
  }
}
