// The control stream: every line type of docs/daemon.md validates; anything else is refused
// with a reason, never thrown.
import { describe, expect, it } from "vitest";
import schema from "../../schema/daemon-control.v1.json" with { type: "json" };
import { CONTROL_TYPES, lostTotal, parseControlLine } from "../../src/daemon/control.js";
import { SAMPLES, ts } from "../support/daemon-samples.js";

describe("control lines", () => {
  it("the types of the TypeScript side are the schema's", () => {
    const consts = schema.oneOf.map((s) => s.properties.type.const);
    expect([...CONTROL_TYPES].sort()).toEqual([...consts].sort());
    expect(Object.keys(SAMPLES).sort()).toEqual([...consts].sort());
  });

  for (const [type, sample] of Object.entries(SAMPLES)) {
    it(`${type} validates, and fails without each required field`, () => {
      const p = parseControlLine(JSON.stringify(sample));
      expect(p).toEqual({ ok: true, line: sample });
      const variant = schema.oneOf.find((s) => s.properties.type.const === type);
      for (const field of variant?.required ?? []) {
        const copy: Record<string, unknown> = { ...sample };
        delete copy[field];
        const r = parseControlLine(JSON.stringify(copy));
        expect(r.ok, `${type} without ${field}`).toBe(false);
      }
    });
  }

  it("refuses what is not a control line, with the reason", () => {
    expect(parseControlLine("{not json")).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^not JSON/),
    });
    expect(parseControlLine("[1]")).toMatchObject({ ok: false });
    expect(parseControlLine(JSON.stringify({ type: "reboot", ts }))).toEqual({
      ok: false,
      error: expect.stringContaining('(type "reboot")'),
    });
    expect(parseControlLine(JSON.stringify({ ...SAMPLES.stats, lost: -1 })).ok).toBe(false);
    expect(parseControlLine(JSON.stringify({ ...SAMPLES.error, ts: "yesterday" })).ok).toBe(false);
    expect(parseControlLine(JSON.stringify({ ...SAMPLES["job-end"], log_sha256: "XYZ" })).ok).toBe(
      false,
    );
    // a failed reload must say why
    expect(
      parseControlLine(JSON.stringify({ type: "policy-reload", ts, ok: false, policies: 0 })).ok,
    ).toBe(false);
    expect(
      parseControlLine(
        JSON.stringify({
          type: "policy-reload",
          ts,
          ok: false,
          policies: 0,
          error: "x.conf:3: bad",
        }),
      ).ok,
    ).toBe(true);
    // the record of a deny is a connect record
    expect(parseControlLine(JSON.stringify({ ...SAMPLES.deny, record: { kind: "exec" } })).ok).toBe(
      false,
    );
  });

  it("lines shaped as agent-c/commands/daemon.c writes them", () => {
    const lines = [
      `{"type":"daemon-start","ts":"${ts}","pid":77,"mode":"observe","jobs_dir":"/j","policy_dir":null,"cgroup":null,"log":"/j/daemon-1.ndjson","attach":{"exec":"tracepoint/sched/sched_process_exec","dns":null},"kernel":null}`,
      `{"type":"job-start","ts":"${ts}","job":"DPNDNCY_JOB=a","log":"/j/DPNDNCY_JOB_a-1.ndjson","pid":9,"cgroup":null,"container":null,"project":null,"name":null,"policy":null}`,
      `{"type":"job-end","ts":"${ts}","job":"DPNDNCY_JOB=a","log":"/j/DPNDNCY_JOB_a-1.ndjson","reason":"idle","project":null,"name":null,"complete":false,"events":{"exec":1,"connect":0},"lost":3,"duration_s":1.250}`,
      `{"type":"deny","ts":"${ts}","record":{"v":1,"kind":"connect","verdict":"deny"}}`,
      `{"type":"policy-reload","ts":"${ts}","ok":false,"policies":2,"error":"acme/default.conf:3: bad"}`,
      `{"type":"daemon-stop","ts":"${ts}","jobs_closed":1,"jobs_started":4,"events":{"exec":9},"lost":0}`,
    ];
    for (const l of lines) expect(parseControlLine(l), l).toMatchObject({ ok: true });
  });

  it("extra fields are allowed (a newer agent may add some)", () => {
    expect(parseControlLine(JSON.stringify({ ...SAMPLES.error, code: "EMFILE" })).ok).toBe(true);
  });

  it("lost as a count or per cause", () => {
    expect(lostTotal(3)).toBe(3);
    expect(lostTotal({ ringbuf: 2, open: 5 })).toBe(7);
    expect(parseControlLine(JSON.stringify({ ...SAMPLES.stats, lost: { ringbuf: 2 } })).ok).toBe(
      true,
    );
  });
});
