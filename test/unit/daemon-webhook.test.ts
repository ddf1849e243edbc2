// Deny webhooks against local HTTP servers on 127.0.0.1: signature, delivery id, retries and
// backoff, what is not retried, the bounded queue.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Deny } from "../../src/daemon/control.js";
import { DaemonMetrics } from "../../src/daemon/metrics.js";
import { readSecret, retryAfterMs, WebhookSender } from "../../src/daemon/webhook.js";
import { SAMPLES } from "../support/daemon-samples.js";
import { type Received, receiver, verifies } from "../support/webhook-receiver.js";

const SECRET = "s3cret-for-tests";

const servers: Server[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const deny = (n: number): Deny => ({
  ...(SAMPLES.deny as unknown as Deny),
  job: `CI_JOB_ID=${n}`,
});

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}

function sender(url: string, o: Partial<ConstructorParameters<typeof WebhookSender>[0]> = {}) {
  const logs: string[] = [];
  const metrics = new DaemonMetrics({ defaultMetrics: false });
  const s = new WebhookSender({
    url,
    secret: SECRET,
    timeoutMs: 2000,
    maxAttempts: 5,
    queueLimit: 100,
    backoffMs: 20,
    maxBackoffMs: 200,
    metrics,
    log: (l) => logs.push(l),
    host: "runner-1",
    ...o,
  });
  return { s, logs, metrics };
}

const count = async (m: DaemonMetrics, result: string) =>
  (await m.webhookDeliveries.get()).values.find((v) => v.labels.result === result)?.value ?? 0;

describe("deny webhook", () => {
  it("posts the deny, signed over the exact body bytes", async () => {
    const r = await receiver((_, __, res) => res.writeHead(204).end());
    servers.push(r.server);
    const { s, metrics } = sender(r.url);
    s.enqueue(deny(1));
    await until(() => s.pending === 0 && r.got.length === 1);
    const got = r.got[0] as Received;
    expect(verifies(got, SECRET)).toBe(true);
    expect(verifies(got, "another secret")).toBe(false);
    const body = JSON.parse(got.body.toString());
    expect(body).toEqual({
      type: "deny",
      job: "CI_JOB_ID=1",
      project: "acme/app",
      name: "build",
      record: SAMPLES.deny.record,
      host: "runner-1",
      sent_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    expect(got.headers["content-type"]).toBe("application/json");
    expect(got.headers["x-dpndncy-delivery"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(got.headers["x-dpndncy-timestamp"])).toBe(
      Math.floor(Date.parse(body.sent_at) / 1000),
    );
    expect(await count(metrics, "ok")).toBe(1);
  });

  it("retries 503 and 429 with the same delivery id, honouring Retry-After", async () => {
    const r = await receiver((n, _, res) => {
      if (n === 1) res.writeHead(503).end();
      else if (n === 2) res.writeHead(429, { "retry-after": "1" }).end();
      else res.writeHead(200).end();
    });
    servers.push(r.server);
    const { s, metrics, logs } = sender(r.url);
    s.enqueue(deny(1));
    await until(() => r.got.length === 3 && s.pending === 0);
    const ids = new Set(r.got.map((g) => g.headers["x-dpndncy-delivery"]));
    expect(ids.size).toBe(1);
    for (const g of r.got) expect(verifies(g, SECRET)).toBe(true);
    // Retry-After: 1 s, although the backoff alone would be at most 200 ms
    const [, second, third] = r.got as [Received, Received, Received];
    expect(third.at - second.at).toBeGreaterThanOrEqual(950);
    expect(await count(metrics, "ok")).toBe(1);
    expect(logs.join("\n")).toMatch(/HTTP 503; retry 2\/5/);
  });

  it("does not retry other 4xx; gives up after maxAttempts; counts both", async () => {
    const r = await receiver((_, req, res) =>
      res.writeHead(req.headers["x-dpndncy-delivery"] && r.got.length === 1 ? 400 : 500).end(),
    );
    servers.push(r.server);
    const { s, metrics, logs } = sender(r.url, { maxAttempts: 3 });
    s.enqueue(deny(1)); // 400: final
    s.enqueue(deny(2)); // 500, 500, 500: gives up
    await until(() => s.pending === 0);
    expect(r.got.length).toBe(4);
    expect(await count(metrics, "failed")).toBe(2);
    expect(logs.join("\n")).toMatch(/WEBHOOK DELIVERY FAILED .*HTTP 400 \(not retried\)/);
    expect(logs.join("\n")).toMatch(/WEBHOOK DELIVERY FAILED .*HTTP 500; gave up after 3 attempt/);
  });

  it("backs off exponentially on a closed port, then delivers when the receiver comes up", async () => {
    const probe = await receiver(() => undefined);
    const port = Number(new URL(probe.url).port);
    await new Promise((r) => probe.server.close(r)); // nothing listens there now
    const { s, logs } = sender(probe.url, { maxAttempts: 20, backoffMs: 40, maxBackoffMs: 400 });
    s.enqueue(deny(1));
    await until(() => logs.length >= 3);
    expect(logs[0]).toMatch(/ECONNREFUSED/);
    const r = await receiver((_, __, res) => res.writeHead(200).end(), port);
    servers.push(r.server);
    await until(() => s.pending === 0);
    expect(r.got.length).toBe(1);
    const delays = logs.map((l) => Number(/in (\d+) ms/.exec(l)?.[1]));
    // each wait is within [backoff/2, backoff] of 40, 80, 160, 320, 400…
    for (const [i, d] of delays.entries()) {
      const b = Math.min(400, 40 * 2 ** i);
      expect(d).toBeGreaterThanOrEqual(b / 2 - 1);
      expect(d).toBeLessThanOrEqual(b + 1);
    }
  });

  it("a timeout is retried", async () => {
    const r = await receiver((n, _, res) => {
      if (n === 1) setTimeout(() => res.writeHead(200).end(), 1500);
      else res.writeHead(200).end();
    });
    servers.push(r.server);
    const { s, logs } = sender(r.url, { timeoutMs: 200 });
    s.enqueue(deny(1));
    await until(() => s.pending === 0 && r.got.length === 2);
    expect(logs[0]).toMatch(/no answer within 200 ms/);
    expect(r.got[0]?.headers["x-dpndncy-delivery"]).toBe(r.got[1]?.headers["x-dpndncy-delivery"]);
  });

  it("a full queue drops the oldest, counted and said", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const r = await receiver((_, __, res) => void gate.then(() => res.writeHead(200).end()));
    servers.push(r.server);
    const { s, metrics, logs } = sender(r.url, { queueLimit: 2 });
    for (let i = 1; i <= 5; i++) s.enqueue(deny(i)); // 1 in flight, 2..5 queued into 2 places
    expect(await count(metrics, "dropped")).toBe(2);
    // said once (then at most every 10 s), counted every time
    expect(logs.filter((l) => /WEBHOOK QUEUE FULL \(2\): dropped 1 oldest/.test(l))).toHaveLength(
      1,
    );
    expect((await metrics.webhookQueue.get()).values[0]?.value).toBe(2);
    release();
    await until(() => s.pending === 0);
    expect(r.got.map((g) => JSON.parse(g.body.toString()).job)).toEqual([
      "CI_JOB_ID=1",
      "CI_JOB_ID=4",
      "CI_JOB_ID=5",
    ]);
  });

  it("flush gives up after its time and reports what is left", async () => {
    const r = await receiver((_, __, res) => res.writeHead(503).end());
    servers.push(r.server);
    const { s, metrics, logs } = sender(r.url, {
      maxAttempts: 100,
      backoffMs: 50,
      maxBackoffMs: 50,
    });
    s.enqueue(deny(1));
    s.enqueue(deny(2));
    const t0 = Date.now();
    expect(await s.flush(300)).toBe(1);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(logs.join("\n")).toMatch(
      /WEBHOOKS NOT DELIVERED at shutdown: 1 dropped, 1 still in flight/,
    );
    await until(() => s.pending === 0);
    expect(await count(metrics, "dropped")).toBe(1);
    expect(await count(metrics, "failed")).toBe(1);
  });

  it("a deny of a process with no job says so with nulls", async () => {
    const r = await receiver((_, __, res) => res.writeHead(200).end());
    servers.push(r.server);
    const { s } = sender(r.url);
    s.enqueue({ type: "deny", ts: SAMPLES.deny.ts, record: { kind: "connect" } });
    await until(() => s.pending === 0 && r.got.length === 1);
    expect(JSON.parse(r.got[0]?.body.toString() ?? "")).toMatchObject({
      job: null,
      project: null,
      name: null,
      record: { kind: "connect" },
    });
  });

  it("the secret file must exist and not be empty", () => {
    const d = mkdtempSync(join(tmpdir(), "dpndncy-webhook-"));
    dirs.push(d);
    expect(() => readSecret(join(d, "none"))).toThrow(
      `webhook.secretFile ${join(d, "none")}: cannot read: ENOENT`,
    );
    writeFileSync(join(d, "empty"), "\n  \n");
    expect(() => readSecret(join(d, "empty"))).toThrow(
      `webhook.secretFile ${join(d, "empty")} is empty`,
    );
    writeFileSync(join(d, "s"), `${SECRET}\n`);
    expect(readSecret(join(d, "s"))).toBe(SECRET);
  });

  it("Retry-After in seconds or as a date", () => {
    const now = new Date("2026-11-23T15:00:00Z");
    expect(retryAfterMs("3", now)).toBe(3000);
    expect(retryAfterMs("Mon, 23 Nov 2026 15:00:10 GMT", now)).toBe(10_000);
    expect(retryAfterMs("soon", now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });
});
