// The VM's root file system: a newc cpio archive (gzip) built with `cpio` from a staging
// directory under build/vm/: busybox (static), the static agent, the workloads with the
// host's libc for the dynamic one, a few /etc files, a fake home, and the generated /init.
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { runOk } from "../kernel/proc.js";
import { VM_BUILD } from "./paths.js";

export interface ImageFile {
  /** absolute path inside the image */
  path: string;
  /** host file to copy ... */
  from?: string;
  /** ... or the content */
  content?: string;
  mode?: number;
}

/** Builds the image at `out` (overwritten) and returns `out`. */
export async function buildInitramfs(files: ImageFile[], out: string): Promise<string> {
  mkdirSync(VM_BUILD, { recursive: true });
  const stage = mkdtempSync(join(VM_BUILD, ".stage-"));
  try {
    for (const d of ["bin", "sbin", "dev", "proc", "sys", "tmp", "run", "etc", "root", "out"]) {
      mkdirSync(join(stage, d), { recursive: true });
    }
    for (const f of files) {
      const dest = join(stage, f.path);
      mkdirSync(dirname(dest), { recursive: true });
      if (f.from !== undefined) copyFileSync(f.from, dest);
      else writeFileSync(dest, f.content ?? "");
      chmodSync(dest, f.mode ?? (f.from !== undefined ? 0o755 : 0o644));
    }
    // sorted entries, owned by root: the same inputs give the same archive
    await runOk(
      [
        "/bin/sh",
        "-c",
        'cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 > "$2"',
        "sh",
        stage,
        out,
      ],
      { timeoutMs: 120_000 },
    );
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return out;
}
