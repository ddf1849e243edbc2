import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import predicateSchema from "../../schema/predicate.v1.json" with { type: "json" };
import { sha256Utf8 } from "../../src/trace/accumulate.js";
import { summarizeFile, summarizeStream } from "../../src/trace/summarize.js";
import type { Predicate } from "../../src/trace/types.js";

const FIXTURE = join(import.meta.dirname, "../fixtures/attack.ndjson");
const fixtureBytes = readFileSync(FIXTURE);
const fixtureLines = fixtureBytes.toString("utf8").split("\n").slice(0, -1);
const validatePredicate = new Ajv2020({ allErrors: true }).compile(predicateSchema);
const dir = mkdtempSync(join(tmpdir(), "dpndncy-trace-"));
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

function expectSchemaValid(p: Predicate): void {
  const ok = validatePredicate(p);
  expect(validatePredicate.errors ?? [], JSON.stringify(validatePredicate.errors)).toEqual([]);
  expect(ok).toBe(true);
}

let n = 0;
async function summarizeBytes(bytes: Buffer | string): Promise<Predicate> {
  const path = join(dir, `log-${n++}.ndjson`);
  writeFileSync(path, bytes);
  const p = await summarizeFile(path);
  expectSchemaValid(p);
  return p;
}

/** Rebuilds a log from event objects, with a correct stop record (seq, log_sha256). */
function withStop(lines: string[], stop: Record<string, unknown>): string {
  const body = lines.map((l) => `${l}\n`).join("");
  const rec = { ...stop, seq: lines.length, log_sha256: sha256(body) };
  return `${body}${JSON.stringify(rec)}\n`;
}
const stopRecord = () => JSON.parse(fixtureLines.at(-1) as string) as Record<string, unknown>;
const eventLines = () => fixtureLines.slice(0, -1);

describe("summarize: the attack-shaped fixture", () => {
  it("counts, dedups, joins hostnames and stays clean", async () => {
    const p = await summarizeFile(FIXTURE);
    expectSchemaValid(p);
    expect(p.log).toEqual({
      name: "attack.ndjson",
      sha256: sha256(fixtureBytes),
      bytes: fixtureBytes.length,
    });
    expect(p.counts).toEqual({ exec: 8, exit: 7, connect: 10, file: 4, dns: 4, agent: 2 });
    expect(p.lines).toMatchObject({ total: 35, valid: 35, corrupt: 0, invalid: 0, truncated: 0 });

    // three connects to the exfil host collapse into one destination named by its DNS answer
    const exfil = p.egress.find((d) => d.addr === "203.0.113.66");
    expect(exfil).toEqual({
      addr: "203.0.113.66",
      port: 443,
      proto: "tcp",
      family: "inet",
      hostnames: ["collector.evil-cdn.example"],
      verdict: "deny",
      verdicts: { deny: 3 },
      count: 3,
      failed: 3,
      steps: ["install"],
      rules: ["default-deny"],
    });
    const imds = p.egress.find((d) => d.addr === "169.254.169.254");
    expect(imds).toMatchObject({ port: 80, verdict: "deny", rules: ["metadata"], hostnames: [] });
    // an AAAA answer names the v6 destination too
    expect(p.egress.find((d) => d.family === "inet6")?.hostnames).toEqual(["registry.npmjs.org"]);
    expect(p.egress.find((d) => d.addr === "104.16.24.35")).toMatchObject({
      count: 2,
      verdict: "allow",
    });
    expect(p.egress).toHaveLength(7);
    expect(p.egress.find((d) => d.addr === "127.0.0.1")?.verdict).toBeNull();

    // exec: (binary, SHA-256 of UTF-8 argv[1]); both curls had argv[1] "-s"
    const curl = p.exec.find((x) => x.binary === "/usr/bin/curl");
    expect(curl).toEqual({
      binary: "/usr/bin/curl",
      arg1_sha256: sha256("-s"),
      count: 2,
      steps: ["install"],
    });
    expect(sha256Utf8("-s")).toBe(sha256("-s"));
    expect(p.exec.find((x) => x.binary === "/usr/bin/sleep")?.steps).toEqual(["(unknown)"]);

    expect(p.dns.map((d) => d.name).sort()).toEqual([
      "agvsbg8.t.evil-cdn.example",
      "collector.evil-cdn.example",
      "github.com",
      "registry.npmjs.org",
    ]);
    expect(p.dns.find((d) => d.name.startsWith("agvsbg8"))?.failed).toBe(1);
    expect(p.files.map((f) => f.path)).toContain("/home/runner/.ssh/id_rsa");
    expect(p.files.find((f) => f.path === "/proc/1000/mem")).toMatchObject({
      rule: "proc-mem",
      comms: ["node"],
    });

    expect(p.agent).toMatchObject({
      version: "0.1.0",
      kernel: "6.18.0-cloud-amd64",
      duration_s: 13,
    });
    expect(p.agent.attach.file).toBe("tracepoint/syscalls/sys_enter_openat");
    expect(p.policy).toEqual({
      sha256: "9b2f1c0d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c",
      mode: "enforce",
    });
    expect(p.lost).toEqual({ ringbuf: 0 });
    expect(p.integrity).toMatchObject({
      alive_to_end: true,
      untampered: true,
      stopped_cleanly: true,
      log_sha256_match: true,
      problems: [],
    });
    expect(p.integrity.computed_sha256_before_stop).toBe(
      sha256(fixtureBytes.subarray(0, fixtureBytes.lastIndexOf("\n", fixtureBytes.length - 2) + 1)),
    );
  });

  it("passes the CI identity through untouched", async () => {
    const ci = {
      platform: "github" as const,
      repository: "acme/app",
      runId: "42",
      commit: "a".repeat(40),
    };
    const p = await summarizeFile(FIXTURE, { ci, logName: "trace.ndjson" });
    expect(p.ci).toEqual(ci);
    expect(p.log.name).toBe("trace.ndjson");
    expectSchemaValid(p);
  });

  it("is byte-for-byte deterministic", async () => {
    const a = await summarizeFile(FIXTURE);
    const b = await summarizeFile(FIXTURE);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });
});

describe("summarize: damaged lines are counted, not thrown", () => {
  it("counts corrupt, invalid and truncated lines with line numbers and reasons", async () => {
    const lines = eventLines();
    const damaged = Buffer.concat([
      Buffer.from(`${lines[0]}\n${lines[1]}\n`),
      Buffer.from("{not json\n"), // line 3
      Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]), // line 4: not UTF-8
      Buffer.from('{"v":1,"kind":"connect"}\n'), // line 5: schema-invalid
      Buffer.from("\n"), // line 6: empty
      Buffer.from(`${lines[2]}\n`),
      Buffer.from('{"v":1,"kind":"exec","ts":"2026-11-20T10:0'), // line 8: cut mid-write
    ]);
    const p = await summarizeBytes(damaged);
    expect(p.log.sha256).toBe(sha256(damaged));
    expect(p.log.bytes).toBe(damaged.length);
    expect(p.lines).toMatchObject({ total: 8, valid: 3, corrupt: 3, invalid: 1, truncated: 1 });
    expect(p.lines.first_problems.map((x) => x.line)).toEqual([3, 4, 5, 6, 8]);
    expect(p.lines.first_problems[0]?.reason).toMatch(/^not JSON/);
    expect(p.lines.first_problems[1]?.reason).toBe("not valid UTF-8");
    expect(p.lines.first_problems[2]?.reason).toBe(
      "schema: (root) must have required property 'proto'",
    );
    expect(p.lines.first_problems[3]?.reason).toBe("empty line");
    expect(p.lines.first_problems[4]?.reason).toMatch(/^truncated \(no final newline\): not JSON/);
    expect(p.integrity.problems).toEqual(
      expect.arrayContaining(["NO_STOP_RECORD", "CORRUPT_LINES", "TRUNCATED_LAST_LINE"]),
    );
    expect(p.integrity.untampered).toBe(false);
  });

  it("hashes a valid final line that lacks its newline, and still uses it", async () => {
    const body = `${eventLines().slice(0, 4).join("\n")}`;
    const p = await summarizeBytes(body);
    expect(p.log.sha256).toBe(sha256(body));
    expect(p.lines).toMatchObject({ total: 4, valid: 4, truncated: 1, corrupt: 0 });
    expect(p.counts.connect).toBe(1);
  });

  it("bounds line length: an oversize line is counted and skipped but still hashed", async () => {
    const lines = eventLines();
    const body = `${lines[0]}\n${"x".repeat(5000)}\n${lines[1]}\n`;
    const path = join(dir, "oversize.ndjson");
    writeFileSync(path, body);
    const p = await summarizeFile(path, { maxLineBytes: 1024 });
    expect(p.log.sha256).toBe(sha256(body));
    expect(p.lines).toMatchObject({ total: 3, valid: 2, corrupt: 1 });
    expect(p.lines.first_problems[0]).toEqual({ line: 2, reason: "line longer than 1024 bytes" });
  });

  it("gives the same result whatever the chunking (1-byte chunks)", async () => {
    const whole = await summarizeFile(FIXTURE);
    const bytes = [...fixtureBytes].map((b) => Buffer.from([b]));
    const p = await summarizeStream(Readable.from(bytes), { logName: "attack.ndjson" });
    expect(p).toEqual(whole);
  });

  it("records an empty step or rule the first time it is seen, and a path under each rule", async () => {
    // The fold's "last seen" shortcuts start as "" with nothing recorded: "" must still count.
    const ev = (seq: number, kind: string, extra: Record<string, unknown>) =>
      JSON.stringify({
        v: 1,
        kind,
        ts: "2026-11-20T10:00:00.000000000Z",
        seq,
        pid: 5,
        ppid: 1,
        uid: 0,
        comm: "sh",
        cgroup: 1,
        step: "",
        ...extra,
      });
    const conn = { proto: "tcp", family: "inet", addr: "192.0.2.1", port: 443, result: 0 };
    const file = { path: "/home/r/.ssh/id", flags: 0 };
    const p = await summarizeBytes(
      [
        ev(0, "connect", { ...conn, verdict: "allow", rule: "" }),
        ev(1, "connect", { ...conn, verdict: "allow", rule: "" }),
        ev(2, "file", { ...file, rule: "" }),
        ev(3, "file", { ...file, rule: "ssh" }),
        ev(4, "file", { ...file, rule: "" }),
        ev(5, "exec", { filename: "/bin/sh", argv: ["sh"] }),
        "",
      ].join("\n"),
    );
    expect(p.egress.map((d) => [d.count, d.steps, d.rules])).toEqual([[2, [""], [""]]]);
    expect(p.files.map((f) => [f.rule, f.count, f.steps])).toEqual([
      ["", 2, [""]],
      ["ssh", 1, [""]],
    ]);
    expect(p.exec.map((x) => x.steps)).toEqual([[""]]);
  });

  it("counts steps past the 31 the fold numbers, and overflows an entry's steps exactly", async () => {
    // 40 steps, twice over, all to one destination: the first 31 take the fold's bit cache,
    // the others only its Set; a limit of 35 keeps the first 35 and counts the other 5 twice.
    const lines: string[] = [];
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 40; i++) {
        lines.push(
          JSON.stringify({
            v: 1,
            kind: "connect",
            ts: "2026-11-20T10:00:00.000000000Z",
            seq: lines.length,
            pid: 5,
            ppid: 1,
            uid: 0,
            comm: "sh",
            cgroup: 1,
            step: `s${String(i).padStart(2, "0")}`,
            proto: "tcp",
            family: "inet",
            addr: "192.0.2.1",
            port: 443,
            result: 0,
          }),
        );
      }
    }
    const path = join(dir, `log-${n++}.ndjson`);
    writeFileSync(path, `${lines.join("\n")}\n`);
    const all = await summarizeFile(path);
    const steps = Array.from({ length: 40 }, (_, i) => `s${String(i).padStart(2, "0")}`);
    expect(all.egress.map((d) => [d.count, d.steps])).toEqual([[80, steps]]);
    expect(all.overflow).toEqual({});
    const capped = await summarizeFile(path, { limits: { steps_per_entry: 35 } });
    expect(capped.egress.map((d) => d.steps)).toEqual([steps.slice(0, 35)]);
    expect(capped.overflow).toEqual({ steps_per_entry: 10 });
  });

  it("keeps memory bounded: collections stop at their limits and count the overflow", async () => {
    const p = await summarizeFile(FIXTURE, { limits: { destinations: 2, dns_names: 1, execs: 1 } });
    expect(p.egress).toHaveLength(2);
    expect(p.dns).toHaveLength(1);
    expect(p.exec).toHaveLength(1);
    expect(p.overflow.destinations).toBeGreaterThan(0);
    expect(p.overflow.dns_names).toBe(3);
    expectSchemaValid(p);
  });
});

describe("summarize: tamper evidence", () => {
  it("detects a changed byte before the stop record (log_sha256 mismatch)", async () => {
    const text = fixtureBytes
      .toString("utf8")
      .replace('"verdict":"deny","rule":"metadata"', '"verdict":"allow","rule":"metadata"');
    expect(text).not.toBe(fixtureBytes.toString("utf8"));
    const p = await summarizeBytes(text);
    expect(p.integrity.log_sha256_match).toBe(false);
    expect(p.integrity.problems).toEqual(["LOG_SHA256_MISMATCH"]);
    expect(p.integrity).toMatchObject({
      alive_to_end: true,
      untampered: false,
      stopped_cleanly: false,
    });
  });

  it("detects a deleted line even when the attacker recomputes log_sha256 (seq gap)", async () => {
    const lines = eventLines().filter((_, i) => i !== 17); // drop the metadata-endpoint connect
    const p = await summarizeBytes(withStop(lines, stopRecord()));
    expect(p.integrity.log_sha256_match).toBe(true);
    expect(p.integrity.problems).toEqual(["SEQ_GAP"]);
    // the line after the hole claims seq 18 where 17 was due; the stop line resynchronises
    expect(p.integrity.first_seq_gaps[0]).toEqual({ line: 18, expected: 17, got: 18 });
    expect(p.integrity.stopped_cleanly).toBe(false);
  });

  it("reports a missing stop record (agent killed, log cut short)", async () => {
    const p = await summarizeBytes(
      eventLines()
        .map((l) => `${l}\n`)
        .join(""),
    );
    expect(p.integrity).toMatchObject({
      stop_record: false,
      alive_to_end: false,
      untampered: false,
      stopped_cleanly: false,
      log_sha256_match: null,
      complete: null,
    });
    expect(p.integrity.problems).toEqual(["NO_STOP_RECORD"]);
  });

  it("reports a stop record that says the log was recovered (complete:false)", async () => {
    const p = await summarizeBytes(
      withStop(eventLines(), {
        ...stopRecord(),
        complete: false,
        reason: "agent killed; recovered by stop",
      }),
    );
    expect(p.integrity.problems).toEqual(["STOP_INCOMPLETE"]);
    expect(p.integrity).toMatchObject({
      alive_to_end: false,
      untampered: true,
      stopped_cleanly: false,
    });
    expect(p.integrity.stop_reason).toBe("agent killed; recovered by stop");
  });

  it("reports lines appended after the stop record, lost events and tamper events", async () => {
    const tamper = JSON.stringify({
      v: 1,
      kind: "tamper",
      ts: "2026-11-20T10:00:06.500000000Z",
      seq: 34,
      pid: 900,
      ppid: 1,
      uid: 0,
      comm: "dpndncy-agent",
      cgroup: 4242,
      step: null,
      what: "bpf-detach",
      detail: "link 7 removed",
    });
    const log = `${withStop([...eventLines(), tamper], { ...stopRecord(), lost: { ringbuf: 12 } })}${eventLines()[1]}\n`;
    const p = await summarizeBytes(log);
    expect(p.integrity.problems).toEqual([
      "LINES_AFTER_STOP",
      "SEQ_GAP",
      "EVENTS_LOST",
      "TAMPER_EVENTS",
    ]);
    expect(p.integrity.lines_after_stop).toBe(1);
    expect(p.integrity.tamper_events).toEqual([
      { what: "bpf-detach", detail: "link 7 removed", ts: "2026-11-20T10:00:06.500000000Z" },
    ]);
    expect(p.lost).toEqual({ ringbuf: 12 });
  });
});
