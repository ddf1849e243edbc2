// describe() for the VM matrix, with the kernel suite's rules (test/support/kernel/suite.ts):
// a missing prerequisite FAILS every test with the reason, unless DPNDNCY_SKIP_KERNEL_TESTS=1
// asks to skip, which is then said loudly. Not being able to fetch a kernel counts as a
// missing prerequisite of that kernel's tests. The VMs need no root on the host and touch no
// host kernel state.
import { accessSync, constants, existsSync } from "node:fs";
import { join } from "node:path";
import { describe } from "vitest";
import { AGENT, REPO, which } from "../kernel/env.js";
import { type Arch, hostArch } from "./kernel.js";
import { ccFor, elfArch, isStaticElf } from "./workloads.js";

const TOOLS = ["cpio", "gzip", "ldd"];
const FETCH_TOOLS = ["apt-get", "apt-cache", "dpkg-deb"];
const QEMU: Record<Arch, { bin: string; pkg: string }> = {
  amd64: { bin: "qemu-system-x86_64", pkg: "qemu-system-x86" },
  arm64: { bin: "qemu-system-aarch64", pkg: "qemu-system-arm" },
};

export { which };

/** The static agent for `arch`: the host build, or the cross build (`make agent-arm64`). */
export function agentFor(arch: Arch): string {
  if (arch === hostArch()) return AGENT;
  return process.env.DPNDNCY_AGENT_ARM64 ?? join(REPO, "build/arm64/dpndncy-agent");
}

/** Reasons the matrix cannot run at all here; empty when it can (the kernel downloads aside). */
export function vmPrerequisites(): string[] {
  const why: string[] = [];
  if (process.platform !== "linux" || process.arch !== "x64") {
    why.push(`not x86_64 Linux (${process.platform}/${process.arch})`);
  }
  for (const t of [...TOOLS, ...FETCH_TOOLS]) {
    if (!which(t)) why.push(`tool not found on PATH: ${t} (scripts/prereqs.sh installs it)`);
  }
  if (!existsSync("/usr/share/keyrings/debian-archive-keyring.gpg")) {
    why.push("no Debian archive keyring (install debian-archive-keyring) to fetch the kernels");
  }
  return why;
}

/** Reasons the kernels of `arch` cannot boot here; empty when they can. */
export function archPrerequisites(arch: Arch): string[] {
  const why: string[] = [];
  const q = QEMU[arch];
  if (!which(q.bin))
    why.push(`tool not found on PATH: ${q.bin} (install ${q.pkg}; scripts/prereqs.sh does)`);
  const cc = ccFor(arch);
  if (!which(cc)) why.push(`compiler not found on PATH: ${cc} (scripts/prereqs.sh installs it)`);
  if (arch === hostArch()) {
    if (!existsSync("/bin/busybox")) why.push("no /bin/busybox (install busybox-static)");
    else if (!isStaticElf("/bin/busybox")) {
      why.push("/bin/busybox is dynamically linked (install busybox-static)");
    }
    if (!existsSync("/usr/lib/x86_64-linux-gnu/libc.a")) {
      why.push("no static libc (/usr/lib/x86_64-linux-gnu/libc.a) for gcc -static");
    }
  }
  const agent = agentFor(arch);
  try {
    accessSync(agent, constants.X_OK);
    if (!isStaticElf(agent)) why.push(`agent is not a static executable: ${agent}`);
    else if (elfArch(agent) !== arch) {
      why.push(
        `agent ${agent} is built for ${elfArch(agent) ?? "an unknown machine"}, not ${arch}`,
      );
    }
  } catch {
    why.push(
      `${arch} agent binary missing or not executable: ${agent} (run \`make ${arch === hostArch() ? "agent" : "agent-arm64"}\`)`,
    );
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
