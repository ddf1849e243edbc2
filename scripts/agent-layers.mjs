// The layers of agent-c/ (agent-c/README.md), checked over its #include lines by `make lint`:
//   node scripts/agent-layers.mjs [DIR]     DIR (default agent-c) keeps to its layers: exit 1 if not
//   node scripts/agent-layers.mjs --self-test   the check catches what it must (a tree made to fail)
// A unit is a folder's file pair (records/steps.c + records/steps.h); its layer is its folder:
//   base <- kernel <- records <- features <- commands <- main.c
// A unit may include its own layer and those below, never one above. agent.h (program-wide
// constants) is below every layer. Other quoted includes must be the BPF side's (a header in
// bpf/, or a generated *.skel.h): an agent header that names no layer would hide its layer.
// Units of one layer may use each other, but not in a circle. No .c file is over MAX_LINES. A
// skeleton is opened (<name>_bpf__open) in one file only: each file that calls it carries a copy
// of the whole BPF object.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

export const LAYERS = ["base", "kernel", "records", "features", "commands"];
const MAIN_RANK = LAYERS.length; // main.c, at the top
const CONST_RANK = -1; // agent.h, below every layer
const MAX_LINES = 650; // "no file over ~600 lines" (issue #21), with room for a short addition

function walk(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (/\.[ch]$/.test(e.name)) out.push(p);
  }
  return out;
}

// the layer of a path relative to agent-c/: its rank, or undefined when it names none
function rankOf(rel) {
  if (rel === "agent.h") return CONST_RANK;
  if (rel === "main.c") return MAIN_RANK;
  const i = LAYERS.indexOf(rel.split("/")[0]);
  return i >= 0 && rel.includes("/") ? i : undefined;
}

const layerName = (r) => (r === CONST_RANK ? "agent.h" : r === MAIN_RANK ? "main" : LAYERS[r]);
const unitOf = (rel) => rel.replace(/\.[ch]$/, "");

// bpfDir: the BPF side's headers (bare includes allowed when they are there)
export function check(root, bpfDir) {
  const errors = [];
  const bpfHeaders = new Set(bpfDir ? readdirSync(bpfDir).filter((f) => f.endsWith(".h")) : []);
  const edges = new Map(); // unit -> units of the same layer it includes
  const opens = new Map(); // skeleton -> the files that open it
  for (const file of walk(root).sort()) {
    const rel = relative(root, file);
    const rank = rankOf(rel);
    if (rank === undefined) {
      errors.push(`${rel}: not in a layer folder (${LAYERS.join(", ")}) nor main.c / agent.h`);
      continue;
    }
    const lines = readFileSync(file, "utf8").split("\n");
    if (rel.endsWith(".c") && lines.length > MAX_LINES)
      errors.push(`${rel}: ${lines.length} lines, more than ${MAX_LINES}: split it`);
    const code = rel.endsWith(".c") ? lines.join("\n").replace(/\/\*[\s\S]*?\*\//g, "") : "";
    for (const m of code.matchAll(/\b(\w+)_bpf__open(?:_opts)?\s*\(/g)) {
      if (!opens.has(m[1])) opens.set(m[1], new Set());
      opens.get(m[1]).add(rel);
    }
    lines.forEach((line, i) => {
      const m = /^\s*#\s*include\s+"([^"]+)"/.exec(line);
      if (!m) return;
      const inc = m[1];
      const where = `${rel}:${i + 1}`;
      const r = rankOf(inc);
      if (r === undefined) {
        if (!inc.includes("/") && (inc.endsWith(".skel.h") || bpfHeaders.has(inc))) return;
        errors.push(`${where}: #include "${inc}" names no layer (write "<layer>/${inc}")`);
        return;
      }
      if (r > rank)
        errors.push(
          `${where}: ${layerName(rank)} includes "${inc}" of ${layerName(r)}, a layer above it ` +
            "(call back through an interface the lower unit defines)",
        );
      else if (r === rank && rank >= 0 && rank < MAIN_RANK && unitOf(inc) !== unitOf(rel)) {
        const u = unitOf(rel);
        if (!edges.has(u)) edges.set(u, new Set());
        edges.get(u).add(unitOf(inc));
      }
    });
  }
  for (const [skel, files] of [...opens].sort())
    if (files.size > 1)
      errors.push(
        `${skel}_bpf__open in ${[...files].join(", ")}: open each object in one file only`,
      );
  // a circle among the units of one layer
  const state = new Map(); // unit -> 1 on the path, 2 done
  const path = [];
  const visit = (u) => {
    state.set(u, 1);
    path.push(u);
    for (const v of edges.get(u) ?? []) {
      if (state.get(v) === 1)
        errors.push(`units in a circle: ${[...path.slice(path.indexOf(v)), v].join(" -> ")}`);
      else if (!state.has(v)) visit(v);
    }
    path.pop();
    state.set(u, 2);
  };
  for (const u of [...edges.keys()].sort()) if (!state.has(u)) visit(u);
  return errors;
}

// a small tree per case; each bad one must give its error, the good one none
function selfTest() {
  const cases = [
    {
      name: "good",
      files: { "base/a.h": "", "kernel/b.c": '#include "base/a.h"\n#include "agent.h"\n' },
    },
    {
      name: "upward include",
      files: { "records/r.h": "", "base/a.c": '#include "records/r.h"\n' },
      want: /base\/a\.c:1: base includes "records\/r\.h" of records, a layer above it/,
    },
    {
      name: "header of a layer above, from a header",
      files: { "commands/c.h": "", "features/f.h": '#include "commands/c.h"\n' },
      want: /features\/f\.h:1: features includes "commands\/c\.h" of commands/,
    },
    {
      name: "main.c included",
      files: { "main.c": "", "commands/c.c": '#include "main.c"\n' },
      want: /commands\/c\.c:1: commands includes "main\.c" of main/,
    },
    {
      name: "include without a layer",
      files: { "kernel/k.c": '#include "steps.h"\n' },
      want: /kernel\/k\.c:1: #include "steps\.h" names no layer/,
    },
    {
      name: "file outside the layers",
      files: { "stray.c": "" },
      want: /stray\.c: not in a layer folder/,
    },
    {
      name: "circle in a layer",
      files: {
        "records/x.c": '#include "records/y.h"\n',
        "records/y.c": '#include "records/x.h"\n',
      },
      want: /units in a circle: records\/x -> records\/y -> records\/x/,
    },
    {
      name: "a skeleton opened in two files",
      files: { "kernel/a.c": "x = dns_bpf__open();\n", "kernel/b.c": "y = dns_bpf__open();\n" },
      want: /dns_bpf__open in kernel\/a\.c, kernel\/b\.c: open each object in one file only/,
    },
    {
      name: "file too long",
      files: { "base/long.c": "\n".repeat(MAX_LINES + 1) },
      want: /base\/long\.c: \d+ lines, more than/,
    },
  ];
  let failed = 0;
  for (const c of cases) {
    const dir = mkdtempSync(join(tmpdir(), "agent-layers-"));
    try {
      for (const [p, text] of Object.entries(c.files)) {
        mkdirSync(join(dir, p, ".."), { recursive: true });
        writeFileSync(join(dir, p), text);
      }
      const errs = check(dir, null);
      const ok = c.want ? errs.some((e) => c.want.test(e)) : errs.length === 0;
      if (!ok) {
        failed++;
        console.error(`agent-layers self-test: ${c.name}: got ${JSON.stringify(errs)}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (failed) process.exit(1);
  console.log(`agent-layers self-test: ${cases.length} cases ok`);
}

if (process.argv[2] === "--self-test") selfTest();
else {
  const root = process.argv[2] ?? "agent-c";
  const errors = check(root, "bpf");
  for (const e of errors) console.error(`agent-layers (${root}): ${e}`);
  if (errors.length) process.exit(1);
  console.log(`agent-layers: ${root} keeps to its layers (${LAYERS.join(" <- ")} <- main.c)`);
}
