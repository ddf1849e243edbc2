/**
 * Deny webhooks: one POST per blocked connection, signed with HMAC-SHA256, delivered from a
 * bounded in-memory queue by one background worker, so a slow or dead receiver never holds up
 * the control stream. Retries (network error, timeout, 5xx, 429) back off exponentially with
 * jitter and honour Retry-After; other answers are final. When the queue is full the oldest
 * delivery is dropped, counted and reported.
 *
 * Each attempt carries the same X-Dpndncy-Delivery id (receivers deduplicate by it) and a fresh
 * `sent_at` in the body and X-Dpndncy-Timestamp, so the signature, which covers the exact body
 * bytes, also covers the time the receiver can check for replays.
 */
import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Deny } from "./control.js";
import type { DaemonMetrics } from "./metrics.js";

export interface WebhookOptions {
  url: string;
  secret: string;
  timeoutMs: number;
  maxAttempts: number;
  queueLimit: number;
  metrics?: DaemonMetrics;
  /** Diagnostics (stderr). */
  log: (line: string) => void;
  /** First retry delay and the cap (default 1 s and 60 s; tests shorten them). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Longest Retry-After honoured (default 10 min). */
  maxRetryAfterMs?: number;
  random?: () => number;
  now?: () => Date;
  host?: string;
}

interface Delivery {
  id: string;
  deny: Deny;
  attempts: number;
}

/** The secret file's content, whitespace trimmed; missing or empty is a start-up error. */
export function readSecret(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(
      `webhook.secretFile ${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const secret = text.trim();
  if (!secret) throw new Error(`webhook.secretFile ${file} is empty`);
  return secret;
}

export function signature(secret: string, body: Buffer | string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** Retry-After: seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now: Date): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now.getTime());
}

const retryable = (status: number) => status >= 500 || status === 429 || status === 408;

export class WebhookSender {
  private queue: Delivery[] = [];
  private running = false;
  private idle: (() => void)[] = [];
  private wake: (() => void) | undefined;
  private stopping = false;
  private droppedUnsaid = 0;
  private lastDropSaid = Number.NEGATIVE_INFINITY;
  readonly o: Required<Omit<WebhookOptions, "metrics">> & { metrics?: DaemonMetrics };

  constructor(o: WebhookOptions) {
    this.o = {
      backoffMs: 1000,
      maxBackoffMs: 60_000,
      maxRetryAfterMs: 600_000,
      random: Math.random,
      now: () => new Date(),
      host: hostname(),
      ...o,
    };
  }

  get pending(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  /** Queues a delivery and returns at once. */
  enqueue(deny: Deny): void {
    if (this.stopping) {
      this.o.metrics?.webhookDeliveries.inc({ result: "dropped" });
      return;
    }
    if (this.queue.length >= this.o.queueLimit) {
      const dropped = this.queue.shift();
      this.o.metrics?.webhookDeliveries.inc({ result: "dropped" });
      // said at the first drop, then at most every 10 s with the count (a job in a deny loop
      // must not flood the log as well)
      this.droppedUnsaid++;
      const now = Date.now();
      if (now - this.lastDropSaid >= 10_000) {
        this.o.log(
          `dpndncy daemon: WEBHOOK QUEUE FULL (${this.o.queueLimit}): dropped ${this.droppedUnsaid} oldest deny(s), the last delivery ${dropped?.id} (job ${dropped?.deny.job})`,
        );
        this.droppedUnsaid = 0;
        this.lastDropSaid = now;
      }
    }
    this.queue.push({ id: randomUUID(), deny, attempts: 0 });
    this.o.metrics?.webhookQueue.set(this.queue.length);
    if (!this.running) void this.work();
  }

  /** The exact body of one attempt. */
  body(d: Delivery, sentAt: Date): string {
    const { job, project, name, record } = d.deny;
    return JSON.stringify({
      type: "deny",
      job: job ?? null,
      project: project ?? null,
      name: name ?? null,
      record,
      host: this.o.host,
      sent_at: sentAt.toISOString(),
    });
  }

  private async work(): Promise<void> {
    this.running = true;
    try {
      for (let d = this.queue.shift(); d; d = this.queue.shift()) {
        this.o.metrics?.webhookQueue.set(this.queue.length);
        await this.deliver(d);
      }
    } finally {
      this.running = false;
      this.o.metrics?.webhookQueue.set(this.queue.length);
      for (const f of this.idle.splice(0)) f();
    }
  }

  private async deliver(d: Delivery): Promise<void> {
    for (;;) {
      d.attempts++;
      const sentAt = this.o.now();
      const body = this.body(d, sentAt);
      let problem: string;
      let wait: number | undefined;
      try {
        const res = await fetch(this.o.url, {
          method: "POST",
          body,
          redirect: "manual",
          signal: AbortSignal.timeout(this.o.timeoutMs),
          headers: {
            "content-type": "application/json",
            "user-agent": "dpndncy-daemon",
            "x-dpndncy-delivery": d.id,
            "x-dpndncy-timestamp": String(Math.floor(sentAt.getTime() / 1000)),
            "x-dpndncy-signature": signature(this.o.secret, body),
          },
        });
        await res.body?.cancel().catch(() => undefined);
        if (res.status >= 200 && res.status < 300) {
          this.o.metrics?.webhookDeliveries.inc({ result: "ok" });
          return;
        }
        problem = `HTTP ${res.status}`;
        if (!retryable(res.status)) {
          this.fail(d, `${problem} (not retried)`);
          return;
        }
        wait = retryAfterMs(res.headers.get("retry-after"), this.o.now());
      } catch (e) {
        const err = e as Error & { cause?: { code?: string } };
        problem =
          err.name === "TimeoutError"
            ? `no answer within ${this.o.timeoutMs} ms`
            : `${err.message}${err.cause?.code ? ` (${err.cause.code})` : ""}`;
      }
      if (d.attempts >= this.o.maxAttempts || this.stopping) {
        this.fail(d, `${problem}; gave up after ${d.attempts} attempt(s)`);
        return;
      }
      const backoff = Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** (d.attempts - 1));
      const jittered = backoff / 2 + (backoff / 2) * this.o.random();
      const delay = Math.max(jittered, Math.min(wait ?? 0, this.o.maxRetryAfterMs));
      this.o.log(
        `dpndncy daemon: webhook delivery ${d.id} (job ${d.deny.job}): ${problem}; retry ${d.attempts + 1}/${this.o.maxAttempts} in ${Math.round(delay)} ms`,
      );
      await this.sleep(delay);
    }
  }

  private fail(d: Delivery, why: string): void {
    this.o.metrics?.webhookDeliveries.inc({ result: "failed" });
    this.o.log(
      `dpndncy daemon: WEBHOOK DELIVERY FAILED ${d.id} (job ${d.deny.job}, ${this.o.url}): ${why}`,
    );
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    }).then(() => {
      this.wake = undefined;
    });
  }

  /**
   * Shutdown: keeps delivering for at most `ms`, retrying no more once the time is up; what is
   * still queued then is dropped, counted and reported. Resolves with how many were dropped.
   */
  async flush(ms: number): Promise<number> {
    if (this.pending === 0) return 0;
    const done = new Promise<void>((resolve) => this.idle.push(resolve));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), ms);
    });
    const r = await Promise.race([done, timeout]);
    clearTimeout(timer);
    if (r !== "timeout") return 0;
    this.stopping = true;
    const dropped = this.queue.splice(0);
    this.wake?.();
    for (const _ of dropped) this.o.metrics?.webhookDeliveries.inc({ result: "dropped" });
    const inFlight = this.running ? 1 : 0;
    if (dropped.length + inFlight) {
      this.o.log(
        `dpndncy daemon: WEBHOOKS NOT DELIVERED at shutdown: ${dropped.length} dropped${inFlight ? ", 1 still in flight" : ""}`,
      );
    }
    return dropped.length;
  }
}
