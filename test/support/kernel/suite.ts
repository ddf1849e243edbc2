// describe() for the real-kernel suite: prerequisites (fail, or skip loudly on request),
// per-test cleanup, and the global end-of-file check that nothing of ours is left behind.
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect } from "vitest";
import { removeBuilt } from "./cbuild.js";
import { missingPrerequisites, runCleanups, setInTest } from "./env.js";
import { leftoverNetns } from "./netns.js";
import { leaksSettled, ourPins, type SysState, snapshot } from "./sysstate.js";

export function describeKernel(name: string, body: () => void): void {
  const missing = missingPrerequisites();
  if (missing.length > 0 && process.env.DPNDNCY_SKIP_KERNEL_TESTS === "1") {
    console.warn(
      `SKIPPED kernel tests "${name}" (DPNDNCY_SKIP_KERNEL_TESTS=1) because:\n  - ${missing.join("\n  - ")}`,
    );
    describe.skip(name, body);
    return;
  }
  describe(name, () => {
    let baseline: SysState | undefined;
    beforeAll(async () => {
      if (missing.length > 0) {
        throw new Error(
          `kernel test prerequisites missing (set DPNDNCY_SKIP_KERNEL_TESTS=1 to skip instead):\n  - ${missing.join("\n  - ")}`,
        );
      }
      baseline = await snapshot();
    });
    beforeEach(() => setInTest(true));
    afterEach(async () => {
      setInTest(false);
      await runCleanups("test");
    });
    afterAll(async () => {
      setInTest(false);
      await runCleanups("file");
      removeBuilt();
      if (baseline === undefined) return;
      // The global check: nothing of ours left pinned, mounted, loaded, or lying around.
      const left = [
        ...(await leaksSettled(baseline)),
        ...ourPins().map((p) => `pin ${p}`),
        ...(await leftoverNetns()),
        ...readdirSync(tmpdir())
          .filter((n) => n.startsWith("dpndncy-kt-"))
          .map((n) => `temp dir ${tmpdir()}/${n}`),
      ];
      expect(left, "left behind after the kernel tests of this file").toEqual([]);
    });
    body();
  });
}
