import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// dist/ is what GitHub runs; it must be exactly what the sources bundle to today.
function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? listFiles(p) : [p];
  });
}

describe("dist/ is in sync with src/", () => {
  const fresh = mkdtempSync(join(tmpdir(), "dpndncy-dist-"));
  afterAll(() => rmSync(fresh, { recursive: true, force: true }));

  it("rebuilding into a temp dir gives byte-identical files", () => {
    execFileSync(process.execPath, ["scripts/bundle.mjs", fresh], { stdio: "inherit" });
    const rel = (root: string) =>
      listFiles(root)
        .map((f) => relative(root, f))
        .sort();
    const expected = rel(fresh);
    expect(rel("dist"), "dist/ has stale or missing files: run `make dist`").toEqual(expected);
    for (const f of expected) {
      const same = readFileSync(join("dist", f)).equals(readFileSync(join(fresh, f)));
      expect(same, `dist/${f} is stale: run \`make dist\` and commit it`).toBe(true);
    }
  });
});
