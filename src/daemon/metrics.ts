/**
 * Prometheus metrics of the daemon (prom-client, its own registry) and the /metrics endpoint.
 * The agent's `stats` lines carry cumulative host-wide counts; they become counter increments
 * here (the delta since the previous line). A count that goes down (it cannot, short of a new
 * agent) restarts the baseline: counters never decrease.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { type JobEnd, lostTotal, type Stats } from "./control.js";

export class DaemonMetrics {
  readonly registry = new Registry();
  readonly events = this.counter("dpndncy_events_total", "Events logged for jobs, by kind.", [
    "kind",
  ]);
  readonly verdicts = this.counter("dpndncy_verdicts_total", "Enforce verdicts on connections.", [
    "verdict",
  ]);
  readonly lost = this.counter("dpndncy_lost_events_total", "Events lost (ring buffer full).");
  readonly unattributed = this.counter(
    "dpndncy_unattributed_events_total",
    "Events of processes outside every job (not logged).",
  );
  readonly jobsActive = new Gauge({
    name: "dpndncy_jobs_active",
    help: "Jobs with an open log.",
    registers: [this.registry],
  });
  readonly jobsStarted = this.counter("dpndncy_jobs_started_total", "Jobs seen.");
  readonly jobsEnded = this.counter(
    "dpndncy_jobs_ended_total",
    "Jobs whose log was closed, by whether the trace is complete.",
    ["complete"],
  );
  readonly policyReloads = this.counter(
    "dpndncy_policy_reloads_total",
    "Policy reloads: ok, failed (the agent refused the directory), invalid (a YAML policy did not load; nothing was installed).",
    ["result"],
  );
  readonly webhookDeliveries = this.counter(
    "dpndncy_webhook_deliveries_total",
    "Deny webhooks: ok, failed (gave up), dropped (queue full or shutdown).",
    ["result"],
  );
  readonly webhookQueue = new Gauge({
    name: "dpndncy_webhook_queue_length",
    help: "Deny webhooks waiting to be delivered.",
    registers: [this.registry],
  });
  readonly attestations = this.counter(
    "dpndncy_attestations_total",
    "Job logs signed: ok, failed.",
    ["result"],
  );
  readonly invalidLines = this.counter(
    "dpndncy_control_lines_invalid_total",
    "Lines from the agent that were not valid control lines (ignored).",
  );
  readonly agentErrors = this.counter("dpndncy_agent_errors_total", "error lines from the agent.");

  /** The last cumulative values seen, per series. */
  private last = new Map<string, number>();

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[] = []) {
    return new Counter<L>({ name, help, labelNames, registers: [this.registry] });
  }

  /** Increment by how much a cumulative value grew since the last stats line. */
  private delta(key: string, value: number): number {
    const prev = this.last.get(key);
    this.last.set(key, value);
    if (prev === undefined || value < prev) return value;
    return value - prev;
  }

  onStats(s: Stats): void {
    for (const [kind, n] of Object.entries(s.events)) {
      const d = this.delta(`events:${kind}`, n);
      if (d > 0) this.events.inc({ kind }, d);
    }
    for (const [verdict, n] of Object.entries(s.verdicts)) {
      const d = this.delta(`verdicts:${verdict}`, n);
      if (d > 0) this.verdicts.inc({ verdict }, d);
    }
    const lost = this.delta("lost", lostTotal(s.lost));
    if (lost > 0) this.lost.inc(lost);
    const un = this.delta("unattributed", s.unattributed);
    if (un > 0) this.unattributed.inc(un);
    const started = this.delta("jobs_started", s.jobs_started);
    if (started > 0) this.jobsStarted.inc(started);
    this.jobsActive.set(s.jobs_active);
  }

  onJobEnd(e: JobEnd): void {
    this.jobsEnded.inc({ complete: String(e.complete) });
  }
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/** Serves GET /metrics on host:port (port 0: any free port; the URL says which). */
export async function serveMetrics(
  metrics: DaemonMetrics,
  host: string,
  port: number,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method !== "GET" || path !== "/metrics") {
      res.writeHead(path === "/metrics" ? 405 : 404, { "content-type": "text/plain" });
      res.end(path === "/metrics" ? "GET only\n" : "not found: try /metrics\n");
      return;
    }
    metrics.registry.metrics().then(
      (body) => {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(body);
      },
      (e: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`${String(e)}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const h = a.family === "IPv6" ? `[${a.address}]` : a.address;
  return {
    url: `http://${h}:${a.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
