// Compiles the C helper programs of the suite (and the benchmark) with the system gcc.
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { runOk } from "./proc.js";

let dir: string | undefined;

/** Directory for compiled helpers of this process, removed by removeBuilt(). */
function outDir(): string {
  dir ??= realpathSync(mkdtempSync(join(tmpdir(), "dpndncy-kt-cbuild-")));
  return dir;
}

/** gcc -O2 src -o <tmp>/<name>; returns the binary's path. */
export async function compileC(src: string, extra: string[] = []): Promise<string> {
  const out = join(outDir(), basename(src, ".c") + (extra.includes("-static") ? "-static" : ""));
  await runOk(["gcc", "-O2", "-Wall", "-Werror", ...extra, src, "-o", out]);
  return out;
}

export function removeBuilt(): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
}
