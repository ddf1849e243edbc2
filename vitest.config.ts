import { defineConfig } from "vitest/config";

// Two projects: fast pure unit tests run in parallel; kernel tests load real BPF programs
// into the running kernel and share it, so they run one file at a time.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: "kernel",
          include: ["test/kernel/**/*.test.ts"],
          // whole-run check: fresh machine state at the start, nothing of ours left at the end
          globalSetup: ["test/support/kernel/whole-run.ts"],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
