// The fast path (src/trace/fastparse.ts: one pattern per kind instead of JSON.parse + schema)
// must give exactly what the reference path gives: JSON.parse, then schema/event.v1.json
// (ajv itself here, not the summarizer's own pre-check). Line by line on realistic agent lines
// and on thousands of adversarial variants of them, and log by log on whole predicates.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, describe, expect, it } from "vitest";
import eventSchema from "../../schema/event.v1.json" with { type: "json" };
import { FAST_PATTERNS, fastParse } from "../../src/trace/fastparse.js";
import { parseLine, Rejected } from "../../src/trace/fold.js";
import type { LineInfo } from "../../src/trace/lines.js";
import { summarizeFile } from "../../src/trace/summarize.js";

const ajv = new Ajv2020({ strictTypes: false, allErrors: false }).compile(eventSchema);
const dir = mkdtempSync(join(tmpdir(), "dpndncy-fastparse-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The fields the fold reads, per kind (FoldEvent in accumulate.ts).
const VIEW: Record<string, string[]> = {
  exec: ["kind", "seq", "step", "filename", "arg1"],
  exit: ["kind", "seq"],
  connect: ["kind", "seq", "step", "proto", "family", "addr", "port", "result", "verdict", "rule"],
  file: ["kind", "seq", "step", "path", "rule", "comm"],
  dns: ["kind", "seq", "step", "name", "answers", "rcode"],
};

function view(v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (v.kind === "exec" && Array.isArray(v.argv)) v = { ...v, arg1: v.argv[1] ?? null };
  for (const k of VIEW[v.kind as string] ?? []) if (v[k] !== undefined) out[k] = v[k];
  return out;
}

/** The reference verdict on a line: the view of the event, or null when it is no event. */
function reference(line: string): Record<string, unknown> | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  return ajv(v) ? view(v as Record<string, unknown>) : null;
}

const info: LineInfo = { number: 7, terminated: true, oversize: false };

/** Asserts the fast path agrees with the reference on `line`; true when the fast path decided it. */
function agrees(line: string): boolean {
  const fast = fastParse(line);
  const ref = reference(line);
  if (fast !== undefined) {
    expect(ref, `fast path accepted what the schema rejects: ${line}`).not.toBeNull();
    expect(fast, line).toEqual(ref);
  }
  // The summarizer's own parse (fast first, then reference) agrees too, and words the same error.
  const withFast = parseLine(line, null, info, 1 << 20, true);
  const without = parseLine(line, null, info, 1 << 20, false);
  if (ref === null) {
    expect(withFast, line).toBeInstanceOf(Rejected);
    expect(withFast, line).toEqual(without);
  } else {
    expect(view(withFast as unknown as Record<string, unknown>), line).toEqual(ref);
    expect(view(without as unknown as Record<string, unknown>), line).toEqual(ref);
  }
  return fast !== undefined;
}

const TS = "2026-11-20T10:00:01.123456789Z";
const HEAD = `"v":1,"ts":"${TS}","seq":41,"pid":1200,"tid":1201,"ppid":1100,"uid":1001,"comm":"git","cgroup":4242,"step":"build"`;
const ANC = `"ancestry":[{"pid":1100,"comm":"node"},{"pid":1000,"comm":"Runner.Worker"}]`;

/** Lines as agent-c/records/events.c writes them, one or more per kind and optional field. */
const REALISTIC = [
  `{"v":1,"kind":"exec",${HEAD.slice(6)},"filename":"/usr/bin/git","argv":["git","fetch","--depth=1","origin"],${ANC}}`,
  `{"v":1,"kind":"exec",${HEAD.slice(6)},"filename":"/bin/true","argv":[],"truncated":true,"ancestry":[]}`,
  `{"v":1,"kind":"exec",${HEAD.slice(6)},"filename":"/bin/sh","argv":["sh"]}`,
  `{"v":1,"kind":"exit",${HEAD.slice(6)},"code":0}`,
  `{"v":1,"kind":"exit",${HEAD.slice(6)},"code":137,"signal":9}`,
  `{"v":1,"kind":"connect",${HEAD.slice(6)},"proto":"tcp","family":"inet","addr":"140.82.112.3","port":443,"mapped":false,"result":0,"op":"connect","source":"cgroup","verdict":"allow","rule":"allow:github.com",${ANC}}`,
  `{"v":1,"kind":"connect",${HEAD.slice(6)},"proto":"udp","family":"inet6","addr":"2001:DB8::1","port":53,"mapped":true,"result":null,"op":"sendmsg","source":"tracepoint","verdict":"deny","ancestry":[{"pid":1,"comm":""}]}`,
  `{"v":1,"kind":"connect",${HEAD.slice(6)},"proto":"other","family":"inet","addr":"0.0.0.0","port":0,"result":-111,"pending":true}`,
  `{"v":1,"kind":"connect",${HEAD.slice(6)},"proto":"tcp","family":"inet","addr":"10.0.0.1","port":65535,"result":0,"source":"cgroup","verdict":"audit","rule":"x"}`,
  `{"v":1,"kind":"file",${HEAD.slice(6)},"path":"/home/runner/.ssh/id_rsa","flags":0,"rule":"ssh",${ANC}}`,
  `{"v":1,"kind":"file",${HEAD.slice(6)},"path":"/x","flags":-1,"rule":"r","path_truncated":true}`,
  `{"v":1,"kind":"dns",${HEAD.slice(6)},"name":"github.com","qtype":"A","answers":["140.82.112.3","140.82.112.4"],"source":"libc",${ANC}}`,
  `{"v":1,"kind":"dns",${HEAD.slice(6)},"name":"x.example.","qtype":"ANY","answers":[],"source":"libc","gai_error":-2}`,
  `{"v":1,"kind":"dns",${HEAD.slice(6)},"name":"Example.COM","qtype":"TYPE65","answers":["1.2.3.4"],"source":"packet","rcode":3,"server":"127.0.0.53","transport":"udp","truncated":true,${ANC}}`,
  `{"v":1,"kind":"exit","ts":"${TS}","seq":0,"pid":0,"ppid":0,"uid":0,"comm":"","cgroup":0,"step":null,"code":-1}`,
];

describe("fastParse = JSON.parse + schema, line by line", () => {
  it("decides every realistic agent line itself, with the reference's values", () => {
    for (const line of REALISTIC) expect(agrees(line), line).toBe(true);
  });

  it("leaves agent and tamper lines to the reference path", () => {
    const lines = [
      `{"v":1,"kind":"agent",${HEAD.slice(6)},"event":"start","version":"0.1.0"}`,
      `{"v":1,"kind":"tamper",${HEAD.slice(6)},"what":"bpf-detach"}`,
    ];
    for (const line of lines) expect(agrees(line), line).toBe(false);
  });

  it("agrees on container identities, well-formed or not", () => {
    const id = "0123456789abcdef".repeat(4);
    const pod = "12345678-1234-1234-1234-123456789abc";
    const good = [
      `{"runtime":"docker","id":"${id}","pod":null}`,
      `{"runtime":"docker","id":"${id}","pod":null,"image":"alpine:3","requested_by":4242}`,
      `{"runtime":"kubernetes","id":"${id}","pod":"${pod}","image":null,"requested_by":null}`,
      `{"runtime":"cri-o","id":"${id}","pod":"${pod.replace(/-/g, "")}"}`,
    ];
    const bad = [
      `{"runtime":"lxc","id":"${id}","pod":null}`,
      `{"runtime":"docker","id":"${id.toUpperCase()}","pod":null}`,
      `{"runtime":"docker","id":"${id.slice(1)}","pod":null}`,
      `{"runtime":"docker","id":"${id}"}`,
      `{"runtime":"docker","id":"${id}","pod":"${pod}x"}`,
      `{"runtime":"docker","id":"${id}","pod":"short"}`,
      `{"runtime":"docker","id":"${id}","pod":null,"image":5}`,
      `{"runtime":"docker","id":"${id}","pod":null,"requested_by":"1"}`,
      `{"runtime":"docker","id":"${id}","pod":null,"requested_by":1.5}`,
      `{"runtime":"docker","id":"${id}","pod":null,"extra":1}`,
      `{"id":"${id}","runtime":"docker","pod":null}`,
      "null",
      "{}",
    ];
    for (const template of REALISTIC) {
      for (const c of [...good, ...bad]) {
        const line = template.replace('"step":"build"', `"step":"build","container":${c}`);
        const decided = agrees(line);
        if (good.includes(c)) expect(decided, line).toBe(true);
      }
    }
  });

  it("agrees on adversarial variants: values, escapes, unicode, order, unknown and repeated keys", () => {
    const oddValues = [
      "-1",
      "-0",
      "0",
      "01",
      "1.0",
      "1e2",
      "1E2",
      "1.5",
      "65535",
      "65536",
      "123456789012345",
      "1234567890123456",
      "-123456789012345",
      "9007199254740993",
      "null",
      "true",
      "false",
      '""',
      '"x"',
      '"a\\"b"',
      '"a\\\\b"',
      '"\\u00e9"',
      '"é"',
      '"😀"',
      '"\t"',
      '"a b"',
      "[]",
      '["a"]',
      '["a",1]',
      '[{"pid":1,"comm":"c"}]',
      '[{"comm":"c","pid":1}]',
      '[{"pid":1,"comm":"c","x":1}]',
      '[{"pid":"1","comm":"c"}]',
      '[{"pid":1}]',
      "{}",
      '{"a":1}',
      `"${"c".repeat(64)}"`,
      `"${"c".repeat(65)}"`,
      `"${"ü".repeat(64)}"`,
      '"tcp"',
      '"udp"',
      '"inet6"',
      '"deny"',
      '"cgroup"',
      '"packet"',
      '"bind"',
      '"tcp "',
      `"${TS}"`,
      '"2026-11-20T10:00:01Z"',
      '"2026-11-20T10:00:01.12345678Z"',
    ];
    let decided = 0;
    let total = 0;
    for (const line of REALISTIC) {
      const entries = Object.entries(JSON.parse(line) as Record<string, unknown>).map(
        ([k, v]) => [k, JSON.stringify(v)] as [string, string],
      );
      const variants: [string, string][][] = [];
      for (let i = 0; i < entries.length; i++) {
        for (const raw of oddValues) {
          variants.push(entries.map((e, j) => (j === i ? [e[0], raw] : e)));
        }
        variants.push(entries.filter((_, j) => j !== i)); // missing
        variants.push([...entries.filter((_, j) => j !== i), entries[i] as [string, string]]); // moved last
        variants.push([...entries, entries[i] as [string, string]]); // repeated, same value
        variants.push([...entries, [entries[i]?.[0] as string, '"other"']]); // repeated, last wins
        variants.push([...entries.slice(0, i), ["unknown", '"u"'], ...entries.slice(i)]); // unknown key
      }
      for (const extra of ['"x"', "1", "1.5", "null", '{"a":[1]}', "[1,2]"]) {
        variants.push([...entries, ["zz_new", extra]]);
      }
      for (const v of variants) {
        total++;
        if (agrees(`{${v.map(([k, raw]) => `"${k}":${raw}`).join(",")}}`)) decided++;
      }
      // Whitespace JSON allows, bytes around the object, and every truncation of the line.
      for (const l of [line.replace(/,/g, ", "), ` ${line}`, `${line} `, `${line}\r`, `${line}x`]) {
        total++;
        if (agrees(l)) decided++;
      }
      for (let cut = 1; cut < line.length; cut += 3) {
        total++;
        if (agrees(line.slice(0, cut))) decided++;
      }
    }
    // The variants exercise both paths: many stay in the fast subset, many leave it.
    expect(total).toBeGreaterThan(5000);
    expect(decided).toBeGreaterThan(total / 10);
    expect(total - decided).toBeGreaterThan(total / 10);
  });
});

describe("the patterns name only properties the schema defines", () => {
  it("for each kind: top-level, the kind's own, container and ancestry entries", () => {
    const top = eventSchema.properties;
    for (const [kind, re] of Object.entries(FAST_PATTERNS)) {
      const branch = eventSchema.allOf.find((b) => b.if.properties.kind.const === kind);
      const defined = new Set([
        ...Object.keys(top),
        ...Object.keys(branch?.then.properties ?? {}),
        ...Object.keys(top.container.properties),
        ...Object.keys(top.ancestry.items.properties),
      ]);
      const named = [...re.source.matchAll(/"([a-z_]+)":/g)].map((m) => m[1] as string);
      expect(named.length).toBeGreaterThan(10);
      for (const key of named) expect(defined.has(key), `${kind}: ${key}`).toBe(true);
    }
  });
});

describe("fast and reference summaries of whole logs are byte-identical", () => {
  async function both(lines: (string | Buffer)[], name: string): Promise<Record<string, unknown>> {
    const path = join(dir, `${name}.ndjson`);
    writeFileSync(
      path,
      Buffer.concat(lines.map((l) => (typeof l === "string" ? Buffer.from(l) : l))),
    );
    const fast = JSON.stringify(await summarizeFile(path));
    const ref = JSON.stringify(await summarizeFile(path, { fastPath: false }));
    expect(fast).toBe(ref);
    return JSON.parse(fast) as Record<string, unknown>;
  }

  it("a realistic log with escapes, unicode, reordered fields and a malformed line in the middle", async () => {
    const out: string[] = [];
    for (let seq = 0; seq < 4000; seq++) {
      const template = REALISTIC[seq % REALISTIC.length] as string;
      let line = template.replace('"seq":41', `"seq":${seq}`).replace('"seq":0', `"seq":${seq}`);
      if (seq % 7 === 0) line = line.replace('"step":"build"', `"step":"s${seq % 5}"`);
      if (seq % 11 === 0) line = line.replace('"git"', '"g\\"it"'); // escaped quote
      if (seq % 13 === 0) line = line.replace('"comm":"git"', '"comm":"gït"'); // UTF-8
      if (seq % 17 === 0) line = line.replace('"v":1,', "").replace("{", '{"v":1,"zz":[1],'); // unknown
      if (seq % 19 === 0) line = `${line.replace(`"ts":"${TS}",`, "").slice(0, -1)},"ts":"${TS}"}`;
      if (seq === 2000) line = '{"v":1,"kind":"connect",'; // malformed, mid-log
      out.push(`${line}\n`);
    }
    out.push('{"v":1,"kind":"exit"'); // truncated last line
    const p = (await both(out, "realistic")) as {
      lines: {
        first_problems: { line: number; reason: string }[];
        corrupt: number;
        invalid: number;
      };
      egress: unknown[];
    };
    expect(p.lines.corrupt).toBe(1);
    expect(p.lines.invalid).toBe(0);
    expect(p.lines.first_problems[0]?.line).toBe(2001);
    expect(p.lines.first_problems[0]?.reason).toMatch(/^not JSON: /);
    expect(p.lines.first_problems.at(-1)?.reason).toMatch(/^truncated \(no final newline\)/);
    expect(p.egress.length).toBeGreaterThan(2);
  });

  it("keeps strings exactly, a lone surrogate from an escape too", async () => {
    const step = "\ud800 lone surrogate step";
    const line = (REALISTIC[5] as string).replace(
      '"step":"build"',
      `"step":"\\ud800 lone surrogate step"`,
    );
    const p = (await both([`${line.replace('"seq":41', '"seq":0')}\n`], "surrogate")) as {
      egress: { steps: string[] }[];
    };
    expect(p.egress[0]?.steps).toEqual([step]);
  });

  it("a log of every adversarial variant", async () => {
    const lines: string[] = [];
    for (const line of REALISTIC) {
      const entries = Object.entries(JSON.parse(line) as Record<string, unknown>);
      for (let i = 0; i < entries.length; i++) {
        for (const raw of ["-1", "1.0", "01", '"a\\"b"', "null", "65536", '"x"', "[]"]) {
          lines.push(
            `{${entries.map(([k, v], j) => `"${k}":${j === i ? raw : JSON.stringify(v)}`).join(",")}}\n`,
          );
        }
      }
    }
    const p = (await both(lines, "variants")) as { lines: { valid: number; invalid: number } };
    expect(p.lines.valid).toBeGreaterThan(50);
    expect(p.lines.invalid).toBeGreaterThan(50);
  });
});
