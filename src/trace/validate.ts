// Per-line validation against the agent's log contract, schema/event.v1.json.
// Compiled once at module load: ajv generates a specialised function, which is what keeps
// validation at a few hundred nanoseconds per line.
import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js";
import eventSchema from "../../schema/event.v1.json" with { type: "json" };
import { certainlyValid } from "./fastcheck.js";
import { EVENT_KINDS, type TraceEvent } from "./types.js";

// strictTypes is off because the contract puts `properties` under if/then without repeating
// `type: object` (valid JSON Schema, which ajv's strict mode would merely nag about).
const ajv = new Ajv2020({ strictTypes: false, allErrors: false });
const validateEvent = ajv.compile<TraceEvent>(eventSchema);

export type Validation = { ok: true; event: TraceEvent } | { ok: false; reason: string };

export function validate(value: unknown): Validation {
  // The hand-written check settles the common case; ajv remains the judge of everything else.
  if (certainlyValid(value) || validateEvent(value)) return { ok: true, event: value };
  return { ok: false, reason: describe(value, validateEvent.errors ?? []) };
}

// Only runs for lines that failed, so it may be slow-ish; it exists because the contract's
// if/then branches apply vacuously when `kind` is missing, and ajv then reports a misleading
// "must have required property 'filename'" first.
function describe(value: unknown, errors: readonly ErrorObject[]): string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "schema: not a JSON object";
  }
  const kind = (value as { kind?: unknown }).kind;
  if (typeof kind !== "string" || !(EVENT_KINDS as readonly string[]).includes(kind)) {
    return `schema: /kind is ${kind === undefined ? "missing" : `not a known kind: ${JSON.stringify(kind)}`}`;
  }
  const e = errors[0];
  if (!e) return "schema: invalid";
  const where = e.instancePath === "" ? "(root)" : e.instancePath;
  return `schema: ${where} ${e.message ?? e.keyword}`;
}
