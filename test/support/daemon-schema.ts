// Validates a parsed daemon.yml against schema/daemon.v1.json (for the deploy/ examples).
// Compiled with strict: false: this checks the data, not the schema's own style.
import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";

export function validateDaemonYml(schemaPath: string, data: unknown): string[] {
  const schema = JSON.parse(readFileSync(schemaPath, "utf8")) as object;
  const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
  if (validate(data)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? e.keyword}`);
}
