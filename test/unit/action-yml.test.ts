import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseInputs } from "../../src/action/inputs.js";

interface ActionYml {
  runs: { using: string; pre: string; main: string; post: string; "post-if"?: string };
  inputs: Record<string, { description?: string; default?: string }>;
  outputs: Record<string, { description?: string }>;
}

describe("action.yml", () => {
  const doc = parse(readFileSync("action.yml", "utf8"), { strict: true }) as ActionYml;

  it("is a node24 JavaScript action with pre, main and post from dist/, post-if left at always()", () => {
    expect(doc.runs.using).toBe("node24");
    for (const stage of ["pre", "main", "post"] as const) {
      expect(doc.runs[stage]).toBe(`dist/${stage}.js`);
      expect(existsSync(doc.runs[stage]), `${doc.runs[stage]} exists`).toBe(true);
    }
    expect(doc.runs["post-if"]).toBeUndefined();
  });

  it("documents every input, and the inputs are exactly those the action reads", () => {
    const read = new Set<string>();
    parseInputs((name) => {
      read.add(name);
      return "";
    });
    for (const [name, input] of Object.entries(doc.inputs)) {
      expect(input.description, `input ${name} has a description`).toBeTruthy();
    }
    // `signing-key` is only read when sign: key; the rest on every run.
    expect(new Set([...read, "signing-key"])).toEqual(new Set(Object.keys(doc.inputs)));
  });

  it("its defaults parse into the documented safe defaults", () => {
    const i = parseInputs((name) => doc.inputs[name]?.default ?? "");
    expect(i).toMatchObject({
      mode: "observe",
      sign: "keyless",
      failOn: "none",
      uploadArtifact: true,
    });
  });

  it("documents every output the post stage sets", () => {
    const post = readFileSync("src/action/finish-job.ts", "utf8");
    const set = [...post.matchAll(/core\.setOutput\("([a-z-]+)"/g)].map((m) => m[1]);
    expect(new Set(set)).toEqual(new Set(Object.keys(doc.outputs)));
  });
});
