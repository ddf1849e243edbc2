/**
 * Loads a policy file (YAML or JSON): parse with a real YAML parser, validate against
 * schema/policy.v1.json, then parse every endpoint. Errors name the file, the line and column
 * where YAML can tell, and the offending value. The policy's identity is the SHA-256 of its
 * canonical JSON form, so reformatting a file does not change its version.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Ajv2020 } from "ajv/dist/2020.js";
import { isMap, isSeq } from "yaml";
import schema from "../../schema/policy.v1.json" with { type: "json" };
import { type Located, parseLocated } from "../yaml/located.js";
import { type Endpoint, EndpointError, parseEndpoint } from "./endpoint.js";

export interface Policy {
  version: 1;
  mode?: "observe" | "learn" | "enforce";
  egress?: { allow?: string[]; "allow-metadata"?: boolean };
  dns?: { resolvers?: string[] };
  files?: { sensitive?: string[]; "benign-readers"?: string[] };
}

export interface LoadedPolicy {
  policy: Policy;
  allow: Endpoint[];
  sha256: string;
}

export class PolicyError extends Error {
  /** The file could not be read at all (the CLI exits 3 for that, 1 for an invalid policy). */
  readonly unreadable: boolean;
  constructor(message: string, o: { unreadable?: boolean } = {}) {
    super(message);
    this.name = "PolicyError";
    this.unreadable = o.unreadable ?? false;
  }
}

const validatePolicy = new Ajv2020({ allErrors: true, strict: true }).compile<Policy>(schema);

/** Canonical JSON: keys sorted at every level, no whitespace. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

type AjvError = NonNullable<typeof validatePolicy.errors>[number];
type Ranged = { range?: [number, number, number] } | null | undefined;

const KEYS_AT: Record<string, string[]> = {
  "": Object.keys(schema.properties),
  egress: Object.keys(schema.properties.egress.properties),
  dns: Object.keys(schema.properties.dns.properties),
  files: Object.keys(schema.properties.files.properties),
};

/** What a pattern means, in words (the regex itself tells a user nothing). */
const PATTERN_WORDS: Record<string, string> = {
  "^(/|~/)": "must be an absolute path or start with ~/",
};

const shown = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : String(v));

/** One schema error in words, and the offset of what it is about. */
function describe(e: AjvError, doc: Located["doc"]): { offset?: number; text: string } {
  const path = e.instancePath.split("/").filter(Boolean);
  const name = path.length
    ? path.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i ? `.${p}` : p)).join("")
    : "the policy";
  const node = (path.length ? doc.getIn(path, true) : doc.contents) as Ranged;
  const value = doc.getIn(path);
  const offset = node?.range?.[0];
  switch (e.keyword) {
    case "additionalProperties": {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      const map = node as unknown as {
        items?: { key?: { value?: unknown; range?: [number, number, number] } }[];
      };
      const keyNode = map.items?.find((i) => i.key?.value === key)?.key;
      const allowed = KEYS_AT[path.join(".")] ?? [];
      return {
        offset: keyNode?.range?.[0] ?? offset,
        text: `unknown key "${key}"${path.length ? ` in ${name}` : ""} (allowed: ${allowed.join(", ")})`,
      };
    }
    case "const":
      return {
        offset,
        text: `${name} must be ${shown((e.params as { allowedValue: unknown }).allowedValue)}, not ${shown(value)}${name === "version" ? " (this dpndncy reads policy version 1)" : ""}`,
      };
    case "enum":
      return {
        offset,
        text: `${name} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")}, not ${shown(value)}`,
      };
    case "required": {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      return {
        offset,
        text: `${missing} is missing${missing === "version" ? " (add `version: 1`)" : ""}`,
      };
    }
    case "type": {
      const t = (e.params as { type: string }).type;
      const words: Record<string, string> = {
        array: "a list",
        object: "a mapping",
        string: "a string",
        boolean: "true or false",
      };
      return { offset, text: `${name} must be ${words[t] ?? t}, not ${shown(value)}` };
    }
    case "pattern": {
      const pat = (e.params as { pattern: string }).pattern;
      return {
        offset,
        text: `${name} ${PATTERN_WORDS[pat] ?? `must match ${pat}`}: ${shown(value)}`,
      };
    }
    case "minLength":
      return { offset, text: `${name} must not be empty` };
    default:
      return { offset, text: `${name} ${e.message ?? "is invalid"}` };
  }
}

export function parsePolicy(text: string, file: string): LoadedPolicy {
  const { doc, at } = parseLocated(text, file, (m) => new PolicyError(m));
  if (!isMap(doc.contents))
    throw new PolicyError(`${at(0)}: a policy must be a mapping (version: 1, egress: …)`);
  const value: unknown = doc.toJS();
  // endpoints are checked even when the schema fails, so one run reports every problem
  const allowNodes = doc.getIn(["egress", "allow"], true);
  const problems: { offset?: number; text: string }[] = [];
  const allow: Endpoint[] = [];
  if (isSeq(allowNodes)) {
    for (const item of allowNodes.items as (Ranged & { value?: unknown })[]) {
      if (typeof item?.value !== "string" || item.value === "") continue; // the schema's to say
      try {
        allow.push(parseEndpoint(item.value, at(item.range?.[0])));
      } catch (e) {
        if (!(e instanceof EndpointError)) throw e;
        problems.push({
          offset: item.range?.[0],
          text: `invalid endpoint "${e.input}": ${e.reason}`,
        });
      }
    }
  }
  const valid = validatePolicy(value);
  if (!valid) problems.push(...(validatePolicy.errors ?? []).map((e) => describe(e, doc)));
  if (problems.length || !valid) {
    const lines = problems
      .sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0))
      .map((d) => `${at(d.offset)}: ${d.text}`);
    throw new PolicyError([...new Set(lines)].join("\n"));
  }
  return {
    policy: value,
    allow,
    sha256: createHash("sha256").update(canonicalJson(value)).digest("hex"),
  };
}

export async function loadPolicy(file: string): Promise<LoadedPolicy> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new PolicyError(
      `${file}: cannot read policy: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      { unreadable: true },
    );
  }
  return parsePolicy(text, file);
}
