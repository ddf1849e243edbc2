import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export class ChecksumError extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `agent binary ${path} has SHA-256 ${actual}, expected ${expected}: refusing to run it (tampered download or wrong agent-sha256)`,
    );
    this.name = "ChecksumError";
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

export function normaliseSha256(input: string, where: string): string {
  const s = input
    .trim()
    .toLowerCase()
    .replace(/^sha256:/, "");
  if (!HEX64.test(s))
    throw new Error(`${where}: expected 64 hex digits of SHA-256, got "${input}"`);
  return s;
}

/** Throws ChecksumError unless the file's digest is exactly `expected`. */
export async function assertSha256(path: string, expected: string): Promise<void> {
  const actual = await sha256File(path);
  if (actual !== expected) throw new ChecksumError(path, expected, actual);
}
