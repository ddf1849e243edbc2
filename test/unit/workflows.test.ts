import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// GitHub workflows cannot run here; this checks what a reviewer of a security tool's CI would:
// they parse, every third-party action is pinned by a full commit SHA, permissions are
// nothing by default and each write scope is one this list names and explains, checkouts
// keep no credentials, and no workflow expression is pasted into a shell script.
const DIR = ".github/workflows";
type Step = { uses?: string; run?: string; with?: Record<string, unknown> };
type Job = { permissions?: Record<string, string> | string; steps?: Step[] };
type Workflow = { on: unknown; permissions?: unknown; jobs: Record<string, Job> };

const workflows = readdirSync(DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .map((f) => ({ file: f, wf: parse(readFileSync(join(DIR, f), "utf8")) as Workflow }));

/** The only write scopes any job holds, and why. */
const WRITES: Record<string, Record<string, string[]>> = {
  "release.yml": { publish: ["contents", "id-token", "attestations"] }, // release, sign, store
  "dogfood.yml": { observe: ["id-token"], enforce: ["id-token"] }, // keyless trace signing
};
const READ_SCOPES = new Set(["contents", "actions"]);

describe("GitHub workflows", () => {
  it("exist and parse", () => {
    expect(workflows.map((w) => w.file).sort()).toEqual(["ci.yml", "dogfood.yml", "release.yml"]);
    for (const { file, wf } of workflows)
      expect(Object.keys(wf.jobs ?? {}), file).not.toHaveLength(0);
  });

  it("pin every action by a 40-hex commit SHA (local ./ excepted)", () => {
    for (const { file, wf } of workflows) {
      for (const [job, j] of Object.entries(wf.jobs)) {
        for (const s of j.steps ?? []) {
          if (!s.uses || s.uses === "./") continue;
          expect(s.uses, `${file} ${job}`).toMatch(
            /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_./-]+@[0-9a-f]{40}$/,
          );
        }
      }
    }
  });

  it("grant nothing by default and only the listed write scopes per job", () => {
    for (const { file, wf } of workflows) {
      const top = wf.permissions;
      expect(
        top !== undefined &&
          (JSON.stringify(top) === "{}" || JSON.stringify(top) === '{"contents":"read"}'),
        `${file}: top-level permissions must be {} or contents: read`,
      ).toBe(true);
      for (const [job, j] of Object.entries(wf.jobs)) {
        if (JSON.stringify(top) === "{}")
          expect(j.permissions, `${file} ${job}: needs its own permissions`).toBeDefined();
        const perms = j.permissions ?? {};
        expect(typeof perms, `${file} ${job}: no read-all/write-all`).toBe("object");
        for (const [scope, level] of Object.entries(perms as Record<string, string>)) {
          if (level === "write") {
            expect(WRITES[file]?.[job] ?? [], `${file} ${job}: ${scope}: write`).toContain(scope);
          } else {
            expect(level, `${file} ${job}: ${scope}`).toBe("read");
            expect(READ_SCOPES.has(scope), `${file} ${job}: read ${scope}`).toBe(true);
          }
        }
      }
      for (const [job, scopes] of Object.entries(WRITES[file] ?? {}))
        for (const scope of scopes)
          expect(
            (wf.jobs[job]?.permissions as Record<string, string> | undefined)?.[scope],
            `${file} ${job}`,
          ).toBe("write");
    }
  });

  it("check out without persisting credentials, and paste no expression into a script", () => {
    for (const { file, wf } of workflows) {
      for (const [job, j] of Object.entries(wf.jobs)) {
        for (const s of j.steps ?? []) {
          if (s.uses?.startsWith("actions/checkout@"))
            expect(s.with?.["persist-credentials"], `${file} ${job}`).toBe(false);
          // expressions reach scripts through env: only, never as shell text (injection)
          if (s.run) expect(s.run, `${file} ${job}`).not.toMatch(/\$\{\{/);
        }
      }
      expect(JSON.stringify(wf.on), file).not.toContain("pull_request_target");
    }
  });

  it("release.yml runs on version tags only, tests before publishing, and verifies the pins", () => {
    const wf = workflows.find((w) => w.file === "release.yml")?.wf as Workflow;
    expect(wf.on).toEqual({ push: { tags: ["v[0-9]+.[0-9]+.[0-9]+"] } });
    const build = (wf.jobs.build?.steps ?? []).map((s) => s.run ?? s.uses ?? "");
    const at = (needle: string) => build.findIndex((r) => r.includes(needle));
    expect(at("release-toolchain.sh install")).toBeGreaterThan(-1);
    expect(at("make test")).toBeGreaterThan(at("release-toolchain.sh install"));
    expect(at("make release")).toBeGreaterThan(at("make test"));
    expect(at("make release-verify")).toBeGreaterThan(at("make release"));
    const publish = wf.jobs.publish as Job & { needs?: string };
    expect(publish.needs).toBe("build");
    const uses = (publish.steps ?? []).map((s) => s.uses ?? "");
    expect(uses.some((u) => u.startsWith("actions/attest-build-provenance@"))).toBe(true);
    const attest = publish.steps?.find((s) =>
      s.uses?.startsWith("actions/attest-build-provenance@"),
    );
    expect(attest?.with).toEqual({ "subject-checksums": "release/SHA256SUMS" });
  });
});

describe(".gitlab-ci.yml", () => {
  it("publishes the component to the catalog only from a semantic-version tag, after the traced test", () => {
    const ci = parse(readFileSync(".gitlab-ci.yml", "utf8")) as Record<
      string,
      Record<string, unknown>
    >;
    const job = ci["release:catalog"] as {
      rules: { if: string }[];
      needs: string[];
      release: { tag_name: string };
    };
    expect(job.rules).toEqual([{ if: "$CI_COMMIT_TAG =~ /^[0-9]+\\.[0-9]+\\.[0-9]+$/" }]);
    expect(job.needs).toEqual(["test:traced"]);
    expect(job.release.tag_name).toBe("$CI_COMMIT_TAG");
    const re = /^[0-9]+\.[0-9]+\.[0-9]+$/;
    expect(["1.2.3", "v1.2.3", "1.2", "1.2.3-rc1"].map((t) => re.test(t))).toEqual([
      true,
      false,
      false,
      false,
    ]);
  });
});
