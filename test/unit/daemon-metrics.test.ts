// Prometheus metrics: stats lines (cumulative) become counter increments; scraped over real
// HTTP on loopback.
import { afterEach, describe, expect, it } from "vitest";
import type { JobEnd, Stats } from "../../src/daemon/control.js";
import { DaemonMetrics, type MetricsServer, serveMetrics } from "../../src/daemon/metrics.js";
import { SAMPLES } from "../support/daemon-samples.js";

let server: MetricsServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const stats = (o: Partial<Stats>): Stats => ({ ...(SAMPLES.stats as unknown as Stats), ...o });

/** The value of one series in Prometheus text format, or undefined when absent. */
function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function scrape(url: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
}

describe("metrics", () => {
  it("turns cumulative stats into increments, never decreasing", async () => {
    const m = new DaemonMetrics();
    server = await serveMetrics(m, "127.0.0.1", 0);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    m.onStats(
      stats({
        events: { exec: 10, connect: 4 },
        verdicts: { allow: 3, deny: 1 },
        lost: 0,
        unattributed: 7,
        jobs_active: 2,
        jobs_started: 2,
      }),
    );
    m.onStats(
      stats({
        events: { exec: 25, connect: 4, dns: 6 },
        verdicts: { allow: 5, deny: 4 },
        lost: { ringbuf: 3 },
        unattributed: 9,
        jobs_active: 1,
        jobs_started: 3,
      }),
    );
    m.onJobEnd({ ...(SAMPLES["job-end"] as unknown as JobEnd), complete: true });
    m.onJobEnd({ ...(SAMPLES["job-end"] as unknown as JobEnd), complete: false });
    m.onJobEnd({ ...(SAMPLES["job-end"] as unknown as JobEnd), complete: true });

    const { status, type, text } = await scrape(server.url);
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(value(text, 'dpndncy_events_total{kind="exec"}')).toBe(25);
    expect(value(text, 'dpndncy_events_total{kind="connect"}')).toBe(4);
    expect(value(text, 'dpndncy_events_total{kind="dns"}')).toBe(6);
    expect(value(text, 'dpndncy_verdicts_total{verdict="allow"}')).toBe(5);
    expect(value(text, 'dpndncy_verdicts_total{verdict="deny"}')).toBe(4);
    expect(value(text, "dpndncy_lost_events_total")).toBe(3);
    expect(value(text, "dpndncy_unattributed_events_total")).toBe(9);
    expect(value(text, "dpndncy_jobs_active")).toBe(1);
    expect(value(text, "dpndncy_jobs_started_total")).toBe(3);
    expect(value(text, 'dpndncy_jobs_ended_total{complete="true"}')).toBe(2);
    expect(value(text, 'dpndncy_jobs_ended_total{complete="false"}')).toBe(1);
    expect(text).toContain("# TYPE dpndncy_events_total counter");
    expect(text).toContain("# TYPE dpndncy_jobs_active gauge");
    // default process metrics
    expect(value(text, "process_cpu_user_seconds_total")).toBeGreaterThan(0);

    // a count that goes down (a new agent) restarts the baseline; the counter only grows
    m.onStats(stats({ events: { exec: 2, connect: 4, dns: 6 }, unattributed: 9, jobs_started: 3 }));
    m.onStats(stats({ events: { exec: 5, connect: 4, dns: 6 }, unattributed: 9, jobs_started: 3 }));
    const after = (await scrape(server.url)).text;
    expect(value(after, 'dpndncy_events_total{kind="exec"}')).toBe(25 + 2 + 3);
    expect(value(after, 'dpndncy_events_total{kind="connect"}')).toBe(4);
  });

  it("serves /metrics only", async () => {
    server = await serveMetrics(new DaemonMetrics({ defaultMetrics: false }), "127.0.0.1", 0);
    const base = server.url.replace(/\/metrics$/, "");
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(server.url, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${server.url}?x=1`)).status).toBe(200);
  });

  it("binds IPv6 loopback and names it in brackets", async () => {
    try {
      server = await serveMetrics(new DaemonMetrics({ defaultMetrics: false }), "::1", 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EADDRNOTAVAIL") return; // no IPv6 here
      throw e;
    }
    expect(server.url).toMatch(/^http:\/\/\[::1\]:\d+\/metrics$/);
    expect((await scrape(server.url)).status).toBe(200);
  });

  it("a port in use is an error, not a silent daemon without metrics", async () => {
    server = await serveMetrics(new DaemonMetrics({ defaultMetrics: false }), "127.0.0.1", 0);
    const port = Number(new URL(server.url).port);
    await expect(
      serveMetrics(new DaemonMetrics({ defaultMetrics: false }), "127.0.0.1", port),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});
