// The summarizer's fast paths must not change a single byte of the predicate:
//   - lines of an all-ASCII run are decoded once per run (lines.ts) instead of per line;
//   - a hand-written check accepts well-formed events before ajv is asked (fastcheck.ts).
// The simple path is the same file read in tiny chunks: every line then spans chunks and goes
// through the per-line Buffer path (isUtf8 + decode), as the reader did before.
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, describe, expect, it } from "vitest";
import eventSchema from "../../schema/event.v1.json" with { type: "json" };
import { certainlyValid } from "../../src/trace/fastcheck.js";
import { fileChunks } from "../../src/trace/lines.js";
import {
  type SummarizeOptions,
  summarizeFile,
  summarizeStream,
} from "../../src/trace/summarize.js";

const FIXTURES = join(import.meta.dirname, "../fixtures");
const dir = mkdtempSync(join(tmpdir(), "dpndncy-fastpath-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

/**
 * The fast path (summarizeFile) and the simple path (7-byte chunks) give the same JSON, with
 * the log hashed in this thread and in a worker thread (digest.ts; large files use it).
 */
async function expectSamePredicate(bytes: Buffer, opts: SummarizeOptions = {}): Promise<string> {
  const path = join(dir, "log.ndjson");
  writeFileSync(path, bytes);
  const fast = JSON.stringify(await summarizeFile(path, { ...opts, hashWorker: false }));
  expect(JSON.stringify(await summarizeFile(path, { ...opts, hashWorker: true }))).toBe(fast);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 7) chunks.push(bytes.subarray(i, i + 7));
  const simple = JSON.stringify(
    await summarizeStream(Readable.from(chunks), { ...opts, logName: "log.ndjson" }),
  );
  expect(fast).toBe(simple);
  return fast;
}

function event(seq: number, kind: string, extra: Record<string, unknown>): string {
  const ts = `2026-11-20T10:00:${String(seq % 60).padStart(2, "0")}.000000000Z`;
  const base = { v: 1, kind, ts, seq, pid: 100 + (seq % 7), ppid: 1, uid: 0, comm: "sh" };
  return JSON.stringify({ ...base, cgroup: 1, step: seq % 5 ? `s${seq % 3}` : null, ...extra });
}

/** A log with every kind, non-ASCII names, damaged lines, a seq gap and a stop record. */
function generated(opts: { stopSha: "right" | "wrong"; truncatedTail: boolean }): Buffer {
  const lines: string[] = [
    event(0, "agent", { event: "start", version: "0.1.0", mode: "enforce", attach: { a: "b" } }),
  ];
  for (let seq = 1; seq < 3000; seq++) {
    if (seq === 1500) continue; // a removed line: seq gap
    const k = seq % 9;
    if (k === 0) {
      lines.push(
        event(seq, "connect", {
          proto: seq % 2 ? "tcp" : "udp",
          family: "inet6",
          addr: `2001:DB8::${seq % 40}`,
          port: 443,
          result: seq % 4 ? 0 : -111,
          verdict: ["allow", "deny", "audit"][seq % 3],
          rule: `r${seq % 4}`,
        }),
      );
    } else if (k === 1) {
      lines.push(
        event(seq, "dns", {
          name: `Host${seq % 30}.Example.`,
          qtype: "AAAA",
          answers: [`2001:db8::${seq % 40}`],
          source: "libc",
          rcode: seq % 11 ? 0 : 3,
        }),
      );
    } else if (k === 2) {
      // Non-ASCII (UTF-8) bytes: this run takes the per-line Buffer path.
      lines.push(
        event(seq, "exec", { filename: `/usr/bin/tööl${seq % 5}`, argv: ["t", `ä${seq % 3}`] }),
      );
    } else if (k === 3) {
      lines.push(event(seq, "file", { path: `/home/r/.ssh/k${seq % 6}`, flags: 0, rule: "ssh" }));
    } else if (k === 4) {
      lines.push(event(seq, "exit", { code: seq % 2 }));
    } else if (k === 5 && seq % 45 === 5) {
      lines.push(event(seq, "tamper", { what: "bpf-detach" }));
    } else if (seq % 97 === 0) {
      lines.push('{"v":1,"kind":"connect"}'); // schema-invalid
    } else if (seq % 89 === 0) {
      lines.push("{not json"); // corrupt
    } else if (seq % 101 === 0) {
      lines.push(""); // empty
    } else if (seq % 131 === 0) {
      lines.push(event(seq, "exec", { filename: "x", argv: [1] })); // invalid argv
    } else {
      lines.push(event(seq, "exit", { code: 0, signal: 9 }));
    }
  }
  const corrupt = Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]); // not UTF-8, mid-log
  const body = Buffer.concat([
    Buffer.from(
      lines
        .slice(0, 100)
        .map((l) => `${l}\n`)
        .join(""),
    ),
    corrupt,
    Buffer.from(
      lines
        .slice(100)
        .map((l) => `${l}\n`)
        .join(""),
    ),
  ]);
  const stop = event(lines.length + 1, "agent", {
    event: "stop",
    version: "0.1.0",
    complete: true,
    lost: { ringbuf: 0 },
    log_sha256: opts.stopSha === "right" ? sha256(body) : sha256("something else"),
  });
  const tail = opts.truncatedTail ? event(lines.length + 2, "exit", { code: 0 }).slice(0, 40) : "";
  return Buffer.concat([body, Buffer.from(`${stop}\n${tail}`)]);
}

describe("fileChunks", () => {
  it("yields the file's bytes in order, the next read under way, and closes when stopped early", async () => {
    const path = join(dir, "chunks.bin");
    const bytes = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 251));
    writeFileSync(path, bytes);
    const seen: Buffer[] = [];
    for await (const c of fileChunks(path, 4096)) seen.push(Buffer.from(c)); // copy: reused
    expect(Buffer.concat(seen).equals(bytes)).toBe(true);
    expect(seen.length).toBe(Math.ceil(bytes.length / 4096));
    for await (const c of fileChunks(path, 4096)) {
      expect(c.length).toBe(4096);
      break; // the read of the next chunk is pending: it must end before the file is closed
    }
    await expect(fileChunks(join(dir, "missing"), 4096).next()).rejects.toThrow(/ENOENT/);
  });
});

describe("trace fast path = simple path", () => {
  for (const name of readdirSync(FIXTURES).filter((f) => f.endsWith(".ndjson"))) {
    it(`fixture ${name}`, async () => {
      await expectSamePredicate(readFileSync(join(FIXTURES, name)));
    });
  }

  it("a generated log with damage, a seq gap and a right log_sha256", async () => {
    const p = JSON.parse(
      await expectSamePredicate(generated({ stopSha: "right", truncatedTail: true })),
    );
    // the log really exercises what it claims to
    expect(p.lines.corrupt).toBeGreaterThan(3);
    expect(p.lines.invalid).toBeGreaterThan(3);
    expect(p.lines.truncated).toBe(1);
    expect(p.integrity.log_sha256_match).toBe(true);
    expect(p.integrity.problems).toEqual(
      expect.arrayContaining([
        "SEQ_GAP",
        "CORRUPT_LINES",
        "TRUNCATED_LAST_LINE",
        "LINES_AFTER_STOP",
      ]),
    );
    expect(p.exec.length).toBeGreaterThan(0);
  });

  it("a generated log with a wrong log_sha256", async () => {
    const p = JSON.parse(
      await expectSamePredicate(generated({ stopSha: "wrong", truncatedTail: false })),
    );
    expect(p.integrity.log_sha256_match).toBe(false);
    expect(p.lines.truncated).toBe(0);
  });

  it("with limits overflowing and oversize lines", async () => {
    const log = Buffer.concat([
      generated({ stopSha: "right", truncatedTail: false }),
      Buffer.from(`${"x".repeat(3000)}\n`),
    ]);
    const p = JSON.parse(
      await expectSamePredicate(log, {
        maxLineBytes: 2048,
        limits: { destinations: 5, dns_names: 4, execs: 3, files: 2, steps_per_entry: 1 },
      }),
    );
    expect(Object.keys(p.overflow).length).toBeGreaterThan(2);
  });
});

// Every property schema/event.v1.json defines, at the top and in any kind's branch.
const SCHEMA_KEYS = [
  ...new Set([
    ...Object.keys(eventSchema.properties),
    ...eventSchema.allOf.flatMap((b) => Object.keys(b.then.properties)),
  ]),
];

describe("fastcheck accepts only what ajv accepts", () => {
  const ajv = new Ajv2020({ strictTypes: false, allErrors: false }).compile(eventSchema);
  const samples = [
    ...readFileSync(join(FIXTURES, "attack.ndjson"), "utf8").split("\n").filter(Boolean),
    ...generated({ stopSha: "right", truncatedTail: false })
      .toString("utf8")
      .split("\n")
      .slice(0, 40),
  ].flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
  const odd: unknown[] = [
    undefined,
    null,
    "",
    "x".repeat(65),
    "ü".repeat(40),
    -1,
    0,
    1.5,
    70000,
    Number.POSITIVE_INFINITY,
    true,
    [],
    ["a", 1],
    {},
    { a: "b" },
    { a: 1.5 },
    [{ pid: 1, comm: "c" }],
    [{ pid: "1", comm: "c" }],
    "2026-11-20T10:00:00.000000000Z",
    "2026-11-20T10:00:00Z",
    "a".repeat(64),
    "start",
    "stop",
    "tcp",
    "inet",
    "allow",
    "libc",
    "exec",
    "enforce",
    { runtime: "docker", id: "a".repeat(64), pod: null },
    { runtime: "containerd", id: "b".repeat(64), pod: "12345678-1234-1234-1234-123456789abc" },
    { runtime: "docker", id: "A".repeat(64), pod: null },
    { runtime: "lxc", id: "a".repeat(64), pod: null },
    { runtime: "docker", id: "a".repeat(64) },
  ];

  it("never says valid where ajv says invalid, and agrees on the samples", () => {
    let checked = 0;
    for (const s of samples) {
      expect(certainlyValid(s) ? ajv(s) : true).toBe(true);
      const keys = [...Object.keys(s), ...SCHEMA_KEYS];
      for (const k of keys) {
        for (const v of odd) {
          const m = { ...s, [k]: v };
          if (v === undefined) delete m[k];
          if (certainlyValid(m)) expect(ajv(m), `${k}=${JSON.stringify(v)}`).toBe(true);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(1000);
  });
});
