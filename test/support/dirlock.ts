// A machine-wide lock as a directory (mkdir is atomic) holding an owner line "pid tag". A lock
// whose owner process is gone is stale and removed. Used by the kernel suite, the VM matrix and
// the benchmark, which must not share the kernel's hooks or the one qemu slot.
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

// Plain fields, no parameter properties: the benchmark loads this file with node's type
// stripping, which only erases types.
export class DirLock {
  readonly path: string;
  readonly token: string;

  constructor(path: string, tag = randomBytes(6).toString("hex")) {
    this.path = path;
    this.token = `${process.pid} ${tag}`;
  }

  /** One attempt: true when taken; otherwise the current owner (a stale lock is cleared for the next attempt). */
  tryTake(): { taken: true } | { taken: false; owner: string } {
    try {
      mkdirSync(this.path);
      writeFileSync(join(this.path, "owner"), this.token);
      return { taken: true };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let owner = "";
    try {
      owner = readFileSync(join(this.path, "owner"), "utf8");
    } catch {}
    if (owner !== "" && !alive(Number(owner.split(" ")[0]))) {
      rmSync(this.path, { recursive: true, force: true });
    }
    return { taken: false, owner };
  }

  release(): void {
    try {
      if (readFileSync(join(this.path, "owner"), "utf8") === this.token) {
        rmSync(this.path, { recursive: true, force: true });
      }
    } catch {}
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
