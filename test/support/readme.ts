// The fenced blocks of README.md, each named by the `<!-- snippet: ID -->` line just above
// it, so tests can run exactly what a reader copies (test/unit/readme-snippets.test.ts lists
// which test runs which block; a block without a name fails that test).
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const README = join(import.meta.dirname, "../../README.md");

export interface Snippet {
  id: string | null;
  lang: string;
  body: string;
  /** 1-based line of the opening fence. */
  line: number;
}

export function readmeSnippets(text = readFileSync(README, "utf8")): Snippet[] {
  const lines = text.split("\n");
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)\s*$/.exec(lines[i] ?? "");
    if (!open) continue;
    const indent = open[1] ?? "";
    const marker = /^\s*<!-- snippet: ([a-z0-9-]+) -->\s*$/.exec(lines[i - 1] ?? "");
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && (lines[j] ?? "").trim() !== "```"; j++) {
      const l = lines[j] ?? "";
      body.push(l.startsWith(indent) ? l.slice(indent.length) : l.trimStart());
    }
    out.push({
      id: marker?.[1] ?? null,
      lang: open[2] ?? "",
      body: `${body.join("\n")}\n`,
      line: i + 1,
    });
    i = j;
  }
  return out;
}

export function snippet(id: string): Snippet {
  const s = readmeSnippets().find((x) => x.id === id);
  if (!s) throw new Error(`README.md has no block marked <!-- snippet: ${id} -->`);
  return s;
}
