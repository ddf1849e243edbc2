// What the enforce tests share: the clients' "RES <op> <errno>" lines (fixtures/enforce_client.py,
// attack_client.py) and a policy file for `--config`.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./env.js";

/** "RES op errno" lines -> op -> errno (0: the operation succeeded) */
export function results(stdout: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of stdout.split("\n")) {
    const m = /^RES (\S+) (-?\d+)$/.exec(l);
    if (m?.[1]) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** text written to a temp agent.conf, for `--config` */
export function policyFile(text: string): string {
  const f = join(tempDir("policy"), "agent.conf");
  writeFileSync(f, text);
  return f;
}
