// YAML parsed with positions, for errors that name FILE:LINE:COLUMN (policy files, daemon.yml).
import { type Document, LineCounter, parseDocument } from "yaml";

type Ranged = { range?: [number, number, number] } | null | undefined;

export interface Located {
  doc: Document;
  /** FILE:LINE:COLUMN of a character offset (just FILE without one). */
  at(offset: number | undefined): string;
  /** Where the node at path is, or its nearest ancestor that exists. */
  where(path: (string | number)[]): string;
}

/**
 * Parses text (duplicate keys are errors); a YAML syntax error is thrown as
 * `fail("FILE:LINE:COLUMN: invalid YAML: ...")`, so each caller keeps its own error class.
 */
export function parseLocated(
  text: string,
  file: string,
  fail: (message: string) => Error,
): Located {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined) => {
    if (offset === undefined) return file;
    const { line, col } = lines.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  const where = (path: (string | number)[]) => {
    for (let p = path; ; p = p.slice(0, -1)) {
      const node = (p.length ? doc.getIn(p, true) : doc.contents) as Ranged;
      if (node?.range) return at(node.range[0]);
      if (!p.length) return file;
    }
  };
  const first = doc.errors[0];
  if (first) throw fail(`${at(first.pos[0])}: invalid YAML: ${first.message.split("\n")[0]}`);
  return { doc, at, where };
}
