/**
 * Annotations for blocked egress and sensitive reads, grouped per destination/path and
 * capped: GitHub shows at most 10 errors and 10 warnings per step, and a noisy job must not
 * drown the one that matters.
 */
import * as core from "@actions/core";
import type { Predicate } from "../trace/types.js";

const CAP = 8;

export function annotationLines(p: Predicate): { errors: string[]; warnings: string[] } {
  const blocked = p.egress.filter((d) => d.verdict === "deny");
  const errors = blocked
    .slice(0, CAP)
    .map(
      (d) =>
        `egress blocked: ${d.hostnames[0] ?? d.addr}:${d.port}/${d.proto} (${d.count}×, steps: ${d.steps.join(", ")})`,
    );
  if (blocked.length > CAP)
    errors.push(`…and ${blocked.length - CAP} more blocked destinations (see the job summary)`);
  const warnings = p.files
    .slice(0, CAP)
    .map(
      (f) =>
        `sensitive file read: ${f.path} [${f.rule}] by ${f.comms.join(", ")} (steps: ${f.steps.join(", ")})`,
    );
  if (p.files.length > CAP)
    warnings.push(`…and ${p.files.length - CAP} more sensitive files (see the job summary)`);
  return { errors, warnings };
}

export function annotate(p: Predicate): void {
  const { errors, warnings } = annotationLines(p);
  for (const e of errors) core.error(e, { title: "dpndncy" });
  for (const w of warnings) core.warning(w, { title: "dpndncy" });
}
