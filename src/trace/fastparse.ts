// The summarizer's fast path: one regular expression per kind matches a line in the layout the
// agent writes (agent-c/records/events.c: keys in its order, optional ones where it puts them) and
// captures the fields the summary needs. No JSON.parse (half of the summarizer's time) and no
// schema validator: the match itself is the validation. A JS character scanner was tried
// first and was no faster than JSON.parse; V8 compiles these expressions to machine code.
//
// Soundness rule (the one thing to keep when editing): a line may match ONLY if JSON.parse +
// schema/event.v1.json accept it, with the same values in the captured fields. So each
// pattern accepts a strict subset of JSON: no whitespace, no backslash escapes (strings are
// [^"\\\u0000-\u001f]*), integers of at most 15 digits (exact in a double; no fraction or
// exponent: the next character must be , } or ]), each key once, in a fixed order, and only
// keys the schema defines for that kind, each with a value the schema allows. Anything else
// (other orders, unknown keys, escapes, agent and tamper records) does not match and
// goes the reference way (JSON.parse, then the schema), which also words every error.
// test/unit/trace-fastparse.test.ts compares the two paths on realistic and adversarial lines.
import type { FoldEvent } from "./accumulate.js";

const UINT = "(?:0|[1-9][0-9]{0,14})";
const INT = `-?${UINT}`;
const STR = '[^"\\\\\\u0000-\\u001f]*';
const BOOL = "(?:true|false)";
// comm: maxLength 64 counts code points; 64 UTF-16 units are never more.
const COMM = '[^"\\\\\\u0000-\\u001f]{0,64}';
const TS = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}Z";
const STRS = `(?:"${STR}"(?:,"${STR}")*)?`;
const ANCESTOR = `\\{"pid":${INT},"comm":"${STR}"\\}`;

// What agent-c/records/containers.c adds after the step for a task in a container.
const CONTAINER = `(?:,"container":\\{"runtime":"(?:docker|containerd|cri-o|podman|kubernetes|buildkit)","id":"(?:[0-9a-f]{64}|[0-9a-z]{25})","pod":(?:null|"[0-9a-f-]{32,36}")(?:,"image":(?:null|"${STR}"))?(?:,"requested_by":(?:null|${INT}))?\\})?`;

/**
 * The line from its start to the step (and container), for kind k; captures seq, comm (only file events keep it:
 * a capture is a string allocation; the group stays so the numbering is the same for every kind)
 * and step (undefined when null).
 */
const head = (kind: string): string =>
  `^\\{"v":1,"kind":"${kind}","ts":"${TS}","seq":(${UINT}),"pid":${UINT}(?:,"tid":${UINT})?,"ppid":${UINT},"uid":${UINT},"comm":"${kind === "file" ? `(${COMM})` : `()${COMM}`}","cgroup":${UINT},"step":(?:null|"(${STR})")${CONTAINER}`;
const TAIL = `(?:,"ancestry":\\[(?:${ANCESTOR}(?:,${ANCESTOR})*)?\\])?\\}$`;

const EXEC = new RegExp(
  `${head("exec")},"filename":"(${STR})","argv":\\[(?:"${STR}"(?:,"(${STR})")?(?:,"${STR}")*)?\\](?:,"truncated":${BOOL})?${TAIL}`,
);
const EXIT = new RegExp(`${head("exit")},"code":${INT}(?:,"signal":${INT})?\\}$`);
// Which of a few constants matched is told by an empty group in each alternative: an empty
// capture is the empty-string constant, so no string is allocated per line for it.
const CONNECT = new RegExp(
  `${head("connect")},"proto":"(?:tcp()|udp()|other)","family":"inet(6)?","addr":"(${STR})","port":(${UINT})(?:,"mapped":${BOOL})?,"result":(?:null()|(${INT}))(?:,"op":"(?:connect|sendmsg|socket|bind)")?(?:,"source":"(?:tracepoint|cgroup)")?(?:,"verdict":"(?:allow()|deny()|audit())")?(?:,"rule":"(${STR})")?(?:,"pending":${BOOL})?${TAIL}`,
);
const FILE = new RegExp(
  `${head("file")},"path":"(${STR})","flags":${INT},"rule":"(${STR})"(?:,"path_truncated":${BOOL})?${TAIL}`,
);
const DNS = new RegExp(
  `${head("dns")},"name":"(${STR})","qtype":"${STR}","answers":\\[(${STRS})\\],"source":"(?:libc|packet)"(?:,"gai_error":${INT})?(?:,"rcode":(${INT}))?(?:,"server":"${STR}")?(?:,"transport":"(?:udp|tcp)")?(?:,"truncated":${BOOL})?${TAIL}`,
);

/** The patterns, for the test that they name only properties the schema defines. */
export const FAST_PATTERNS = { exec: EXEC, exit: EXIT, connect: CONNECT, file: FILE, dns: DNS };

// Offset of the kind's first letter in '{"v":1,"kind":"…'.
const KIND_AT = 15;

/** The summary's view of a line, or undefined: "not decided here, ask the reference path". */
export function fastParse(s: string): FoldEvent | undefined {
  // Picks the pattern by the kind's first letter; the pattern itself checks the whole prefix.
  switch (s.charCodeAt(KIND_AT)) {
    case 99: {
      // c
      const m = CONNECT.exec(s);
      if (m === null) return undefined;
      const port = digits(m[8] as string);
      if (port > 65535) return undefined;
      const e: FoldEvent = {
        kind: "connect",
        seq: digits(m[1] as string),
        step: m[3] ?? null,
        // The constants (later compares are pointer compares), told apart by the empty groups.
        proto: m[4] !== undefined ? "tcp" : m[5] !== undefined ? "udp" : "other",
        family: m[6] === undefined ? "inet" : "inet6",
        addr: m[7] as string,
        port,
        result: m[9] !== undefined ? null : digits(m[10] as string),
      };
      if (m[11] !== undefined) e.verdict = "allow";
      else if (m[12] !== undefined) e.verdict = "deny";
      else if (m[13] !== undefined) e.verdict = "audit";
      if (m[14] !== undefined) e.rule = m[14];
      return e;
    }
    case 100: {
      // d
      const m = DNS.exec(s);
      if (m === null) return undefined;
      const e: FoldEvent = {
        kind: "dns",
        seq: digits(m[1] as string),
        step: m[3] ?? null,
        name: m[4] as string,
        answers: strings(m[5] as string),
      };
      if (m[6] !== undefined) e.rcode = digits(m[6]);
      return e;
    }
    case 101: {
      // e: exec or exit
      if (s.charCodeAt(KIND_AT + 2) === 101) {
        const m = EXEC.exec(s);
        if (m === null) return undefined;
        return {
          kind: "exec",
          seq: digits(m[1] as string),
          step: m[3] ?? null,
          filename: m[4] as string,
          arg1: m[5] ?? null, // argv[1]: the second element, when there is one
        };
      }
      const m = EXIT.exec(s);
      return m === null ? undefined : { kind: "exit", seq: digits(m[1] as string) };
    }
    case 102: {
      // f
      const m = FILE.exec(s);
      if (m === null) return undefined;
      return {
        kind: "file",
        seq: digits(m[1] as string),
        step: m[3] ?? null,
        comm: m[2] as string,
        path: m[4] as string,
        rule: m[5] as string,
      };
    }
    default:
      return undefined; // agent, tamper: rare, and their records are kept whole
  }
}

/**
 * The value of a captured integer: -?(0|[1-9][0-9]{0,14}), so exact in a double. By hand:
 * Number() goes through the runtime's general string-to-number conversion, a few % of the
 * summarizer. "-0" gives -0, as JSON.parse does.
 */
function digits(t: string): number {
  const neg = t.charCodeAt(0) === 45;
  let n = 0;
  for (let i = neg ? 1 : 0; i < t.length; i++) n = n * 10 + (t.charCodeAt(i) - 48);
  return neg ? -n : n;
}

/** The strings of a captured array body '"a","b"' (no escapes, no quote inside: see STR). */
function strings(body: string): string[] {
  if (body.length === 0) return [];
  const inner = body.slice(1, -1);
  // One element (most DNS answers): no split.
  return inner.indexOf('","') === -1 ? [inner] : inner.split('","');
}
