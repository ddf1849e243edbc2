// Prints vitest's JSON results as one plain closing line: "N passed, N failed, N skipped".
import { readFileSync } from "node:fs";

const file = process.argv[2] ?? "build/vitest-results.json";
let r;
try {
  r = JSON.parse(readFileSync(file, "utf8"));
} catch (e) {
  console.log(`test summary: no results at ${file} (${e.message})`);
  process.exit(0);
}
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
// the kernel suite's whole-run check (test/support/kernel/whole-run.ts), when it ran
try {
  console.log(
    readFileSync(new URL("../build/whole-run-check.txt", import.meta.url), "utf8").trim(),
  );
} catch {}
