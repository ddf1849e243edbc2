// describe() for the VM matrix, with the kernel suite's rules (test/support/kernel/suite.ts):
// a missing prerequisite FAILS every test with the reason, unless DPNDNCY_SKIP_KERNEL_TESTS=1
// asks to skip, which is then said loudly. Not being able to fetch the kernel counts as a
// missing prerequisite. The VM needs no root on the host and touches no host kernel state.
import { accessSync, constants, existsSync } from "node:fs";
import { describe } from "vitest";
import { AGENT, which } from "../kernel/env.js";
import { isStaticElf } from "./workloads.js";

const TOOLS = ["qemu-system-x86_64", "cpio", "gzip", "gcc", "ldd"];
const FETCH_TOOLS = ["apt-get", "apt-cache", "dpkg-deb"];

export { which };

/** Reasons the VM matrix cannot run here; empty when it can (the kernel download aside). */
export function vmPrerequisites(): string[] {
  const why: string[] = [];
  if (process.platform !== "linux" || process.arch !== "x64") {
    why.push(`not x86_64 Linux (${process.platform}/${process.arch})`);
  }
  for (const t of TOOLS) {
    if (!which(t)) why.push(`tool not found on PATH: ${t} (scripts/prereqs.sh installs it)`);
  }
  for (const t of FETCH_TOOLS) {
    if (!which(t)) why.push(`tool not found on PATH: ${t} (needed to fetch Debian's kernel)`);
  }
  if (!existsSync("/bin/busybox")) why.push("no /bin/busybox (install busybox-static)");
  else if (!isStaticElf("/bin/busybox")) {
    why.push("/bin/busybox is dynamically linked (install busybox-static)");
  }
  if (!existsSync("/usr/lib/x86_64-linux-gnu/libc.a")) {
    why.push("no static libc (/usr/lib/x86_64-linux-gnu/libc.a) for gcc -static");
  }
  try {
    accessSync(AGENT, constants.X_OK);
    if (!isStaticElf(AGENT)) why.push(`agent is not a static executable: ${AGENT}`);
  } catch {
    why.push(`agent binary missing or not executable: ${AGENT} (run \`make agent\`)`);
  }
  return why;
}

export const skipRequested = () => process.env.DPNDNCY_SKIP_KERNEL_TESTS === "1";

/** describe(), or describe.skip() with the reasons printed when skipping is asked for. */
export function describeVm(name: string, body: (missing: string[]) => void): void {
  const missing = vmPrerequisites();
  if (missing.length > 0 && skipRequested()) {
    console.warn(
      `SKIPPED kernel tests "${name}" (DPNDNCY_SKIP_KERNEL_TESTS=1) because:\n  - ${missing.join("\n  - ")}`,
    );
    describe.skip(name, () => body(missing));
    return;
  }
  describe(name, () => body(missing));
}
