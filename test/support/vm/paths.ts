// Where the VM matrix keeps its things: everything under build/vm/ (kernels, workloads,
// initramfs images, the results file the README table is made from).
import { join } from "node:path";
import { REPO } from "../kernel/env.js";

export const VM_BUILD = join(REPO, "build/vm");
export const WORKLOAD_SRC = join(REPO, "test/support/vm/workloads");
/** Written by test/kernel/vm-matrix.test.ts, read by scripts/kernel-table.mjs. */
export const RESULTS_JSON = join(VM_BUILD, "results.json");
