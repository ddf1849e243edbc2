// describe() for the real-kernel suite: prerequisites (fail, or skip loudly on request),
// per-test cleanup, and the global end-of-file check that nothing of ours is left behind.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect } from "vitest";
import { removeBuilt } from "./cbuild.js";
import { leftoverTempDirs, missingPrerequisites, runCleanups, setInTest } from "./env.js";
import { acquireSuiteLock, releaseSuiteLock, waitForNoForeignAgent } from "./lock.js";
import { leftoverNetns } from "./netns.js";
import { leaksSettled, ourPins, type SysState, snapshot } from "./sysstate.js";

/** How long a file waits for another kernel test file (or run) to finish. */
const LOCK_WAIT_MS = 15 * 60_000;
/** How long a file waits for dpndncy-agent processes it did not start to go away. */
const FOREIGN_AGENT_WAIT_MS = 3 * 60_000;

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
    beforeAll(
      async () => {
        if (missing.length > 0) return; // every test then fails in beforeEach, with the reason
        await acquireSuiteLock(LOCK_WAIT_MS);
        await waitForNoForeignAgent(FOREIGN_AGENT_WAIT_MS);
        baseline = await snapshot();
      },
      LOCK_WAIT_MS + FOREIGN_AGENT_WAIT_MS + 30_000,
    );
    beforeEach(() => {
      if (missing.length > 0) {
        throw new Error(
          `kernel test prerequisites missing (set DPNDNCY_SKIP_KERNEL_TESTS=1 to skip instead):\n  - ${missing.join("\n  - ")}`,
        );
      }
      setInTest(true);
    });
    afterEach(async () => {
      setInTest(false);
      await runCleanups("test");
    });
    afterAll(async () => {
      setInTest(false);
      try {
        await runCleanups("file");
        removeBuilt();
        if (baseline === undefined) return;
        // The global check: nothing of ours left pinned, mounted, loaded, or lying around.
        const left = [
          ...(await leaksSettled(baseline)),
          ...ourPins().map((p) => `pin ${p}`),
          ...(await leftoverNetns()),
          ...leftoverTempDirs().map((d) => `temp dir ${d}`),
        ];
        expect(left, "left behind after the kernel tests of this file").toEqual([]);
      } finally {
        releaseSuiteLock();
      }
    });
    body();
  });
}
