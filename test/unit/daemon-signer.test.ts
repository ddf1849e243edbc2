// Each closed job log signed as `dpndncy attest` does, checked with `dpndncy verify`: with a
// local key, and keyless against the local Sigstore stand-in with a token file that rotates.
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSigningKey } from "../../src/attest/sign.js";
import { sha256File } from "../../src/attest/verify.js";
import type { Io } from "../../src/cli/io.js";
import { verify } from "../../src/cli/verify.js";
import type { JobEnd, JobStart } from "../../src/daemon/control.js";
import { DaemonMetrics } from "../../src/daemon/metrics.js";
import {
  bundlePath,
  JobSigner,
  jobCi,
  type SignedJob,
  type SignerSetup,
  setupSigning,
} from "../../src/daemon/signer.js";
import { SAMPLES } from "../support/daemon-samples.js";
import {
  mintIdentityToken,
  type SigstoreStandIn,
  startSigstoreStandIn,
} from "../support/sigstore-stand-in.js";

const FIXTURE = join(import.meta.dirname, "../fixtures/attack.ndjson");
const ISSUER = "https://kubernetes.default.svc.cluster.local";
const dir = mkdtempSync(join(tmpdir(), "dpndncy-daemon-signer-"));
let standIn: SigstoreStandIn;
let rootFile: string;

beforeAll(async () => {
  standIn = await startSigstoreStandIn();
  rootFile = join(dir, "trusted_root.json");
  writeFileSync(rootFile, JSON.stringify(standIn.trustedRoot));
});
afterAll(async () => {
  await standIn.close();
  rmSync(dir, { recursive: true, force: true });
});

async function job(n: number): Promise<{ log: string; end: JobEnd; start: JobStart }> {
  const log = join(dir, `CI_JOB_ID_${n}-1763910000000000000.ndjson`);
  copyFileSync(FIXTURE, log);
  const end = {
    ...(SAMPLES["job-end"] as unknown as JobEnd),
    job: `CI_JOB_ID=${n}`,
    log,
    log_sha256: await sha256File(log),
  };
  const start = { ...(SAMPLES["job-start"] as unknown as JobStart), job: end.job, log };
  return { log, end, start };
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (s) => out.push(s), err: (s) => err.push(s), env: {} };
  const code = await verify(argv, io);
  return { code, out: out.join(""), err: err.join("") };
}

function signer(setup: SignerSetup) {
  const metrics = new DaemonMetrics({ defaultMetrics: false });
  const logs: string[] = [];
  const done: SignedJob[] = [];
  const s = new JobSigner(setup, {
    log: (l) => logs.push(l),
    metrics,
    onSigned: (r) => done.push(r),
  });
  return { s, metrics, logs, done };
}

const attestations = async (m: DaemonMetrics, result: string) =>
  (await m.attestations.get()).values.find((v) => v.labels.result === result)?.value ?? 0;

function predicateOf(bundle: string): { ci: unknown; log: { name: string } } {
  const b = JSON.parse(readFileSync(bundle, "utf8"));
  return JSON.parse(Buffer.from(b.dsseEnvelope.payload, "base64").toString()).predicate;
}

describe("job signer", () => {
  it("signs with a local key; dpndncy verify accepts the bundle for that log only", async () => {
    const { privateKeyPem, publicKeyPem } = generateSigningKey();
    writeFileSync(join(dir, "key.pem"), privateKeyPem, { mode: 0o600 });
    writeFileSync(join(dir, "key.pub.pem"), publicKeyPem);
    const { s, metrics, done } = signer(setupSigning({ kind: "key", key: join(dir, "key.pem") }));
    const j = await job(1);
    s.enqueue(j.end.job, j.log, j.start);
    expect(await s.drain(30_000)).toBe(0);
    expect(done).toEqual([{ job: "CI_JOB_ID=1", log: j.log, bundle: `${j.log}.sigstore.json` }]);
    expect(bundlePath(j.log)).toBe(`${j.log}.sigstore.json`);
    const ok = await run([
      bundlePath(j.log),
      "--log",
      j.log,
      "--key",
      join(dir, "key.pub.pem"),
      "--json",
    ]);
    expect(ok.err).toBe("");
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out).signer.type).toBe("key");
    expect(predicateOf(bundlePath(j.log)).ci).toEqual({
      platform: "gitlab",
      repository: "acme/app",
      jobId: "1",
      jobName: "build",
    });
    expect(await attestations(metrics, "ok")).toBe(1);
    // the bundle binds the bytes: another log does not verify
    const other = join(dir, "other.ndjson");
    writeFileSync(other, `${readFileSync(j.log, "utf8")}\n`);
    const bad = await run([bundlePath(j.log), "--log", other, "--key", join(dir, "key.pub.pem")]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/LOG_DIGEST_MISMATCH/);
  });

  it("keyless: reads the token file at every signing (rotated tokens), one job at a time", async () => {
    const tokenFile = join(dir, "token");
    const setup = setupSigning({
      kind: "keyless",
      identityTokenFile: tokenFile,
      fulcioUrl: standIn.fulcioURL,
      rekorUrl: standIn.rekorURL,
      tsaUrl: standIn.tsaURL,
    });
    let active = 0;
    let most = 0;
    const tokens: string[] = [];
    const counted: SignerSetup = {
      ...setup,
      sign: async (p) => {
        active++;
        most = Math.max(most, active);
        try {
          tokens.push(readFileSync(tokenFile, "utf8"));
          return await setup.sign(p);
        } finally {
          active--;
        }
      },
    };
    const { s, metrics, done } = signer(counted);
    const a = await job(2);
    const b = await job(3);
    const subA = "https://kubernetes.io/namespaces/ci/serviceaccounts/runner-a";
    const subB = "https://kubernetes.io/namespaces/ci/serviceaccounts/runner-b";
    writeFileSync(tokenFile, mintIdentityToken({ iss: ISSUER, sub: subA }));
    s.enqueue(a.end.job, a.log, a.start);
    expect(await s.drain(30_000)).toBe(0);
    writeFileSync(tokenFile, `${mintIdentityToken({ iss: ISSUER, sub: subB })}\n`);
    s.enqueue(b.end.job, b.log, b.start);
    s.enqueue(a.end.job, a.log, a.start); // again: queued behind b, never beside it
    expect(await s.drain(30_000)).toBe(0);
    expect(most).toBe(1);
    expect(done.map((d) => [d.job, d.error])).toEqual([
      ["CI_JOB_ID=2", undefined],
      ["CI_JOB_ID=3", undefined],
      ["CI_JOB_ID=2", undefined],
    ]);
    expect(new Set(tokens).size).toBe(2);
    const check = (log: string, identity: string) =>
      run([
        bundlePath(log),
        "--log",
        log,
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        ISSUER,
        "--trusted-root",
        rootFile,
        "--json",
      ]);
    const vb = await check(b.log, subB);
    expect(vb.err).toBe("");
    expect(vb.code).toBe(0);
    expect(JSON.parse(vb.out).signer).toEqual({
      type: "certificate",
      identity: subB,
      issuer: ISSUER,
    });
    expect((await check(b.log, subA)).code).toBe(1); // signed with the rotated token, not the first
    expect((await check(a.log, subB)).code).toBe(0); // a's second signing used the token then in the file
    expect(await attestations(metrics, "ok")).toBe(3);
    expect(standIn.requests.filter((r) => r.includes("signingCert")).length).toBeGreaterThanOrEqual(
      3,
    );
  });

  it("a failure is counted and reported; the log stays, the queue goes on", async () => {
    const { s, metrics, logs, done } = signer(
      setupSigning({
        kind: "keyless",
        identityTokenFile: join(dir, "no-such-token"),
        fulcioUrl: standIn.fulcioURL,
        tsaUrl: standIn.tsaURL,
      }),
    );
    const j = await job(4);
    s.enqueue(j.end.job, j.log, j.start);
    s.enqueue("CI_JOB_ID=5", join(dir, "gone.ndjson"));
    expect(await s.drain(30_000)).toBe(0);
    expect(done.map((d) => [d.job, d.bundle, typeof d.error])).toEqual([
      ["CI_JOB_ID=4", undefined, "string"],
      ["CI_JOB_ID=5", undefined, "string"],
    ]);
    expect(await attestations(metrics, "failed")).toBe(2);
    expect(logs[0]).toMatch(/SIGNING FAILED for job CI_JOB_ID=4 .*no-such-token/);
    expect(logs[1]).toMatch(/SIGNING FAILED for job CI_JOB_ID=5 .*ENOENT/);
    expect(existsSync(j.log)).toBe(true);
    expect(existsSync(bundlePath(j.log))).toBe(false);
  });

  it("start-up checks: an unreadable or invalid key, a keyless config without a timestamp", () => {
    expect(() => setupSigning({ kind: "key", key: join(dir, "none.pem") })).toThrow(
      `signing.key ${join(dir, "none.pem")}: cannot read: ENOENT`,
    );
    writeFileSync(join(dir, "bad.pem"), "not a key");
    expect(() => setupSigning({ kind: "key", key: join(dir, "bad.pem") })).toThrow(
      /^signing\.key .*bad\.pem: /,
    );
    expect(() =>
      setupSigning({ kind: "keyless", identityTokenFile: "/t", fulcioUrl: "https://f.example" }),
    ).toThrow(/ENDPOINT_REQUIRED/);
  });

  it("a job's ci identity from its marker", () => {
    expect(jobCi("RUNNER_TRACKING_ID=github_8c1e", { project: "acme/app", name: "test" })).toEqual({
      platform: "github",
      repository: "acme/app",
      jobId: "github_8c1e",
      jobName: "test",
    });
    expect(jobCi("DPNDNCY_JOB=a")).toEqual({ platform: "local", jobId: "a" });
    expect(jobCi("MY_JOB=7", { project: null, name: null })).toEqual({
      platform: "local",
      jobId: "7",
    });
  });
});
