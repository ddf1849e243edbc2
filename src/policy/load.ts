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
import { parseLocated } from "../yaml/located.js";
import { type Endpoint, parseEndpoint } from "./endpoint.js";

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
  constructor(message: string) {
    super(message);
    this.name = "PolicyError";
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

export function parsePolicy(text: string, file: string): LoadedPolicy {
  const { doc, at } = parseLocated(text, file, (m) => new PolicyError(m));
  const value: unknown = doc.toJS();
  if (!validatePolicy(value)) {
    const err = validatePolicy.errors?.[0];
    const path = (err?.instancePath ?? "").split("/").filter(Boolean);
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    const where = path.length ? ` at ${path.join(".")}` : "";
    const extra =
      err?.keyword === "additionalProperties"
        ? ` "${(err.params as { additionalProperty: string }).additionalProperty}"`
        : "";
    throw new PolicyError(
      `${at(node?.range?.[0])}: policy${where} ${err?.message ?? "is invalid"}${extra}`,
    );
  }
  const allowNodes = doc.getIn(["egress", "allow"], true);
  const allow = (value.egress?.allow ?? []).map((s, i) => {
    const item = isSeq(allowNodes)
      ? (allowNodes.items[i] as { range?: [number, number, number] })
      : undefined;
    return parseEndpoint(s, at(item?.range?.[0]));
  });
  if (!isMap(doc.contents)) throw new PolicyError(`${file}: policy must be a mapping`);
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
    );
  }
  return parsePolicy(text, file);
}
