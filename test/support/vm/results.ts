// What the VM matrix found, per kernel and attach point, written to build/vm/results.json for
// scripts/kernel-table.mjs (the README's "Supported kernels" table).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { RESULTS_JSON } from "./paths.js";

export interface Check {
  /** exec | connect | file | dns | enforce | tamper | probe | refusal */
  hook: string;
  /** the attach point the agent reported in its start record (or what was tested) */
  attach: string;
  scenario: string;
  pass: boolean;
  error?: string;
  /** e.g. the agent's refusal message */
  detail?: string;
}

export interface KernelResult {
  /** row label, e.g. "6.1.0-50-cloud-amd64" */
  kernel: string;
  /** amd64 | arm64 */
  arch?: string;
  /** the kernel line, e.g. "6.1" */
  series?: string;
  /** how it ran: package, qemu, command line */
  how: string;
  boot: string;
  lsm?: string;
  boot_ms?: number;
  probe?: unknown;
  checks: Check[];
}

export class Results {
  readonly kernels = new Map<string, KernelResult>();
  readonly started = Date.now();

  kernel(boot: string, init: () => Omit<KernelResult, "checks" | "boot">): KernelResult {
    let k = this.kernels.get(boot);
    if (k === undefined) {
      k = { ...init(), boot, checks: [] };
      this.kernels.set(boot, k);
    }
    return k;
  }

  /** Runs the assertions of one check and records whether they held (rethrows). */
  check(
    k: KernelResult | undefined,
    c: Omit<Check, "pass" | "error" | "detail">,
    fn: () => unknown,
  ): void {
    try {
      const detail = fn();
      k?.checks.push({ ...c, pass: true, ...(typeof detail === "string" ? { detail } : {}) });
    } catch (e) {
      k?.checks.push({ ...c, pass: false, error: String((e as Error).message).slice(0, 500) });
      throw e;
    }
  }

  write(extra: Record<string, unknown>): string {
    mkdirSync(dirname(RESULTS_JSON), { recursive: true });
    const doc = {
      generated: new Date().toISOString(),
      duration_ms: Date.now() - this.started,
      ...extra,
      kernels: [...this.kernels.values()],
    };
    writeFileSync(RESULTS_JSON, `${JSON.stringify(doc, null, 2)}\n`);
    return RESULTS_JSON;
  }
}
