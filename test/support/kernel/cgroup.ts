// Test cgroups: created under the cgroup v2 mount for one test, emptied and removed at cleanup
// (also when the test fails). Never the root, never an existing cgroup.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { onCleanup } from "./env.js";

let counter = 0;

export function cgroup2Mount(): string {
  const m = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .find((f) => f[2] === "cgroup2");
  if (!m?.[1])
    throw new Error("no cgroup v2 mount (scripts/prereqs.sh; a cgroup v2 host is needed)");
  return m[1];
}

function procs(dir: string): number[] {
  try {
    return readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Kill what is left in dir and below, then remove them, innermost first. */
function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) removeTree(join(dir, e.name));
  }
  for (let i = 0; i < 50; i++) {
    const left = procs(dir);
    for (const p of left) {
      try {
        process.kill(p, "SIGKILL");
      } catch {}
    }
    try {
      rmdirSync(dir);
      return;
    } catch {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  throw new Error(`cannot remove test cgroup ${dir}: ${procs(dir).join(" ")} still in it`);
}

export interface TestCgroup {
  path: string;
  /** A child cgroup (created now). */
  child(name: string): string;
}

/** A fresh cgroup for this test, removed (with its children and processes) at cleanup. */
export function testCgroup(tag: string): TestCgroup {
  counter += 1;
  const path = join(cgroup2Mount(), `dpndncy-kt-${process.pid}-${tag}-${counter}`);
  mkdirSync(path);
  onCleanup(() => removeTree(path));
  return {
    path,
    child(name: string) {
      const p = join(path, name);
      mkdirSync(p, { recursive: true });
      return p;
    },
  };
}

/**
 * argv that moves itself into cgroup dir and then execs argv (with env, `NAME=value` strings,
 * set only from there on). Join before `ip netns exec`: that remounts /sys, and the cgroup
 * mount is not there any more. A failed join fails the command (exit 97), never runs it elsewhere.
 */
export function inCgroup(dir: string, env: string[], argv: string[]): string[] {
  return [
    "/bin/sh",
    "-c",
    `echo $$ > '${dir}/cgroup.procs' || exit 97; exec env "$@"`,
    "in-cgroup",
    ...env,
    ...argv,
  ];
}
