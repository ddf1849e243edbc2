// The state `dpndncy start` leaves for `dpndncy stop`, in a file: on GitLab `after_script`
// runs in a new shell (exports lost, cwd reset), so nothing may live in the environment.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Mode } from "../agent/control.js";
import type { Detection } from "../platform/detect.js";

export interface Session {
  version: 1;
  agent: string;
  log: string;
  stateDir: string;
  mode: Mode;
  elevate: string[];
  startedAt: string;
  pid: number;
  detection: Detection;
}

export const sessionFile = (dir: string) => join(dir, "session.json");

export function writeSession(dir: string, s: Session): void {
  writeFileSync(sessionFile(dir), `${JSON.stringify(s, null, 2)}\n`);
}

export function readSession(dir: string): Session {
  const path = sessionFile(dir);
  let raw: string;
  try {
    raw = readFileSync(path, "utf8");
  } catch {
    throw new Error(`no session at ${path}: was \`dpndncy start --dir ${dir}\` run in this job?`);
  }
  const s = JSON.parse(raw) as Partial<Session>;
  if (s.version !== 1 || !s.agent || !s.log || !s.stateDir) {
    throw new Error(`${path}: not a dpndncy session file (version ${String(s.version)})`);
  }
  return s as Session;
}
