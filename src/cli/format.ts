// Human-readable renderings of a predicate. Pure: predicate in, text out.
import type { Destination, Predicate } from "../trace/types.js";

const MAX_ROWS = 20;

export function formatSummary(p: Predicate): string {
  const lines: string[] = [];
  const add = (s = "") => lines.push(s);
  add(`dpndncy trace ${p.log.name}  (${p.log.bytes} bytes, sha256 ${p.log.sha256})`);
  if (p.ci) {
    const id = [
      p.ci.repository,
      p.ci.runId && `run ${p.ci.runId}`,
      p.ci.jobName && `job ${p.ci.jobName}`,
    ]
      .filter(Boolean)
      .join(", ");
    add(`ci: ${p.ci.platform}${id ? ` (${id})` : ""}${p.ci.commit ? ` @ ${p.ci.commit}` : ""}`);
  }
  add(
    `agent: ${p.agent.version ?? "?"} on kernel ${p.agent.kernel ?? "?"}; mode ${p.policy.mode ?? "?"}${p.policy.sha256 ? `, policy ${p.policy.sha256.slice(0, 12)}…` : ""}`,
  );
  const attach = Object.entries(p.agent.attach);
  if (attach.length > 0) add(`hooks: ${attach.map(([k, v]) => `${k}=${v}`).join(", ")}`);
  add(integrityLine(p));
  const counts = Object.entries(p.counts).map(([k, n]) => `${k} ${n}`);
  add(`events: ${counts.join(", ") || "none"}${lost(p)}`);
  add(
    `lines: ${p.lines.total} total, ${p.lines.valid} valid, ${p.lines.corrupt} corrupt, ${p.lines.invalid} invalid, ${p.lines.truncated} truncated`,
  );
  for (const x of p.lines.first_problems) add(`  line ${x.line}: ${x.reason}`);

  add();
  add(`egress (${p.egress.length} destinations):`);
  for (const d of p.egress.slice(0, MAX_ROWS)) add(`  ${destination(d)}`);
  more(add, p.egress.length);
  if (p.files.length > 0) {
    add();
    add(`sensitive files (${p.files.length}):`);
    for (const f of p.files.slice(0, MAX_ROWS)) {
      add(`  ${f.path}  [${f.rule}] ×${f.count} by ${f.comms.join(",")} in ${f.steps.join(",")}`);
    }
    more(add, p.files.length);
  }
  add();
  add(`dns (${p.dns.length} names):`);
  for (const d of p.dns.slice(0, MAX_ROWS)) {
    add(`  ${d.name} ×${d.count}${d.failed ? ` (${d.failed} failed)` : ""}`);
  }
  more(add, p.dns.length);
  add();
  add(`exec (${p.exec.length} distinct binary + argv[1]; argv[1] shown as its SHA-256):`);
  for (const x of p.exec.slice(0, MAX_ROWS)) {
    add(
      `  ${x.binary} ${x.arg1_sha256 ? `${x.arg1_sha256.slice(0, 12)}…` : "(no args)"} ×${x.count} in ${x.steps.join(",")}`,
    );
  }
  more(add, p.exec.length);
  const over = Object.entries(p.overflow);
  if (over.length > 0)
    add(`overflow (entries not listed): ${over.map(([k, n]) => `${k} ${n}`).join(", ")}`);
  return `${lines.join("\n")}\n`;
}

export function integrityLine(p: Predicate): string {
  const i = p.integrity;
  if (i.stopped_cleanly && i.problems.length === 0) {
    return "integrity: agent stopped cleanly; log_sha256 verified; no seq gaps";
  }
  const verdict = i.stopped_cleanly ? "stopped cleanly" : "NOT CLEAN";
  return `integrity: ${verdict}: ${i.problems.join(", ")}`;
}

function destination(d: Destination): string {
  const host = d.hostnames.length > 0 ? ` (${d.hostnames.join(", ")})` : "";
  const addr = d.family === "inet6" ? `[${d.addr}]` : d.addr;
  const verdict = d.verdict ? ` ${d.verdict.toUpperCase()}` : "";
  return `${addr}:${d.port}/${d.proto}${host}${verdict} ×${d.count} in ${d.steps.join(",")}`;
}

function lost(p: Predicate): string {
  const n = Object.values(p.lost).reduce((a, b) => a + b, 0);
  return n > 0
    ? `; LOST ${n} (${Object.entries(p.lost)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")})`
    : "";
}

function more(add: (s: string) => void, n: number): void {
  if (n > MAX_ROWS) add(`  … ${n - MAX_ROWS} more (--json for all)`);
}
