// The systemd unit's capability set as a setpriv prefix: how the kernel tests run the daemon
// exactly as deploy/systemd/dpndncy-agent.service would (root with only those capabilities).
import { readFileSync } from "node:fs";
import { join } from "node:path";

const UNIT = join(import.meta.dirname, "..", "..", "..", "deploy/systemd/dpndncy-agent.service");

export function unitCapabilities(): string[] {
  const unit = readFileSync(UNIT, "utf8");
  const caps = /^CapabilityBoundingSet=(.*)$/m.exec(unit)?.[1]?.trim().split(/\s+/) ?? [];
  if (caps.length === 0) throw new Error(`${UNIT}: no CapabilityBoundingSet= line`);
  return caps;
}

/** argv prefix dropping to the unit's bounding set (and no inheritable capabilities). */
export function unitSetpriv(): string[] {
  const caps = unitCapabilities();
  return [
    "setpriv",
    `--bounding-set=-all,${caps.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`).join(",")}`,
    "--inh-caps=-all",
  ];
}
