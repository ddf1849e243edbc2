/**
 * The job summary (GitHub step summary, GitLab collapsible section) rendered from the
 * predicate: a pure function, so what the user reads is exactly what was signed.
 */
import type { Predicate } from "../trace/types.js";

const esc = (s: string): string => s.replace(/[|\\`*_<>[\]]/g, (c) => `\\${c}`).replace(/\n/g, " ");

function table(head: string[], rows: string[][]): string {
  if (rows.length === 0) return "_none_\n";
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return `${[line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n")}\n`;
}

export interface SummaryContext {
  /** The exact command that verifies this job's attestation, when it was signed. */
  verifyCommand?: string;
  /** Rows per table; a noisy job must not produce a summary GitHub refuses (1 MiB). */
  maxRows?: number;
  /** Step id -> the name the user wrote (src/report/step-names.ts); ids are shown otherwise. */
  stepNames?: Record<string, string>;
  /** How the trace was signed; absent means unknown (the verdict line then says nothing of it). */
  signed?:
    | { kind: "none"; why?: string }
    | { kind: "key" }
    | { kind: "keyless"; identity?: string | null; tlog?: { index: string; url: string } | null };
  /** The uploaded artifact with the log, statement and bundle. */
  artifact?: { name: string; url?: string | undefined } | null;
  /** Tables longer than this are folded (<details>), so the verdict stays on screen. */
  foldAbove?: number;
}

/** One line a reader takes in at a glance: what happened, and whether the record is signed. */
export function verdictLine(p: Predicate, ctx: SummaryContext = {}): string {
  const blocked = p.egress.filter((d) => d.verdict === "deny").reduce((n, d) => n + d.count, 0);
  const reads = p.files.reduce((n, f) => n + f.count, 0);
  const parts: string[] = [];
  if (!p.integrity.stopped_cleanly) parts.push("**trace incomplete or tampered**");
  if (blocked > 0) parts.push(`**blocked ${blocked}**`);
  if (reads > 0) parts.push(`**sensitive reads ${reads}**`);
  if (parts.length === 0) parts.push("**clean**");
  const s = ctx.signed;
  if (s?.kind === "keyless") {
    parts.push(
      s.tlog ? `signed ([transparency log entry ${s.tlog.index}](${s.tlog.url}))` : "signed",
    );
  } else if (s?.kind === "key") parts.push("signed (key)");
  else if (s?.kind === "none") parts.push(`**not signed**${s.why ? ` (${esc(s.why)})` : ""}`);
  if (ctx.artifact) {
    parts.push(
      ctx.artifact.url
        ? `artifact [${esc(ctx.artifact.name)}](${ctx.artifact.url})`
        : `artifact ${esc(ctx.artifact.name)}`,
    );
  }
  return `dpndncy: ${parts.join(" · ")}`;
}

export function renderSummary(p: Predicate, ctx: SummaryContext = {}): string {
  const max = ctx.maxRows ?? 50;
  const cap = <T>(xs: T[]) => xs.slice(0, max);
  const names = ctx.stepNames ?? {};
  const steps = (ids: string[]) =>
    esc(ids.map((id) => (names[id] ? `${names[id]} (${id})` : id)).join(", "));
  const more = (xs: unknown[]) =>
    xs.length > max ? `\n_…and ${xs.length - max} more (see the log)_\n` : "";
  const foldAbove = ctx.foldAbove ?? 10;
  const fold = (title: string, rows: number, body: string) =>
    rows > foldAbove ? `<details><summary>${title}</summary>\n\n${body}\n</details>\n` : `${body}`;
  const out: string[] = [];
  const i = p.integrity;
  out.push("## dpndncy runtime trace\n");
  out.push(`${verdictLine(p, ctx)}\n`);
  if (!i.stopped_cleanly) {
    out.push(
      `> [!WARNING]\n> **The trace is incomplete or was tampered with** (${i.problems.join(", ") || "unknown"}). Treat this job's evidence as partial.\n`,
    );
  }
  const lost = Object.values(p.lost).reduce((a, b) => a + b, 0);
  out.push(
    `Mode **${p.policy.mode ?? "unknown"}** · agent ${p.agent.version ?? "?"} on kernel ${p.agent.kernel ?? "?"} · ${
      p.lines.valid
    } events · ${lost} lost · log SHA-256 \`${p.log.sha256}\`\n`,
  );
  const counts = Object.entries(p.counts).sort(([a], [b]) => a.localeCompare(b));
  out.push(
    table(
      ["kind", "events"],
      counts.map(([k, n]) => [k, String(n)]),
    ),
  );

  const blocked = p.egress.filter((d) => d.verdict === "deny");
  if (blocked.length > 0) {
    out.push(`### Blocked egress (${blocked.length})\n`);
    out.push(
      table(
        ["host", "address", "port", "count", "steps", "rule"],
        cap(blocked).map((d) => [
          esc(d.hostnames.join(", ") || "—"),
          esc(d.addr),
          String(d.port),
          String(d.count),
          steps(d.steps),
          esc(d.rules.join(", ")),
        ]),
      ) + more(blocked),
    );
  }
  out.push(`### Egress (${p.egress.length} destinations)\n`);
  out.push(
    fold(
      `${p.egress.length} destinations`,
      p.egress.length,
      table(
        ["host", "address", "port", "proto", "verdict", "count", "steps"],
        cap(p.egress).map((d) => [
          esc(d.hostnames.join(", ") || "—"),
          esc(d.addr),
          String(d.port),
          d.proto,
          d.verdict ?? "observed",
          String(d.count),
          steps(d.steps),
        ]),
      ) + more(p.egress),
    ),
  );
  out.push(`### Sensitive files read (${p.files.length})\n`);
  out.push(
    fold(
      `${p.files.length} files`,
      p.files.length,
      table(
        ["path", "rule", "by", "count", "steps"],
        cap(p.files).map((f) => [
          esc(f.path),
          esc(f.rule),
          esc(f.comms.join(", ")),
          String(f.count),
          steps(f.steps),
        ]),
      ) + more(p.files),
    ),
  );
  const top = [...p.exec].sort((a, b) => b.count - a.count);
  out.push(`### Top executables (${p.exec.length} distinct)\n`);
  out.push(
    fold(
      `top ${Math.min(20, top.length)} of ${p.exec.length}`,
      Math.min(20, top.length),
      table(
        ["binary", "runs", "steps"],
        cap(top)
          .slice(0, 20)
          .map((e) => [esc(e.binary), String(e.count), steps(e.steps)]),
      ),
    ),
  );
  out.push(`### DNS names resolved (${p.dns.length})\n`);
  out.push(
    fold(
      `${p.dns.length} names`,
      p.dns.length,
      table(
        ["name", "lookups", "failed", "steps"],
        cap(p.dns).map((d) => [esc(d.name), String(d.count), String(d.failed), steps(d.steps)]),
      ) + more(p.dns),
    ),
  );
  if (ctx.verifyCommand) {
    out.push("### Verify this attestation\n");
    out.push(`\`\`\`sh\n${ctx.verifyCommand}\n\`\`\`\n`);
  }
  return out.join("\n");
}
