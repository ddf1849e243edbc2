/**
 * The release this version of the action runs: its files' SHA-256 digests, pinned in a file
 * that ships inside the action itself (src/agent/release.json, copied to dist/release.json next
 * to the bundles), so a swapped release asset is refused before it is ever executed. A user who
 * pins the action by tag or commit pins these digests with it.
 *
 * scripts/release-pin.sh writes the digests from a reproducible `make release` before a version
 * is tagged, and the release workflow rebuilds at the tag and refuses to publish files whose
 * digests differ. On a development commit they are null: the action then needs `agent-url` +
 * `agent-sha256`, and says so. It is read at run time rather than bundled so that pinning
 * changes no bundle's bytes (cli.js is itself a pinned release file).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv2020 } from "ajv/dist/2020.js";

/** Architectures releases publish an agent for, by Debian's names (the file names use them). */
export const AGENT_ARCHES = ["amd64", "arm64"] as const;
export type AgentArch = (typeof AGENT_ARCHES)[number];
export const agentFile = (arch: AgentArch) => `dpndncy-agent-linux-${arch}` as const;
export const RELEASE_FILES = [...AGENT_ARCHES.map(agentFile), "cli.js"] as const;
export type ReleaseFile = (typeof RELEASE_FILES)[number];

export interface ReleasePin {
  version: string;
  /** Where the release's files are: `${baseUrl}/${file}` (GitHub's release download layout). */
  baseUrl: string;
  /** Lowercase hex SHA-256 per file; null until a release is pinned. */
  sha256: Record<ReleaseFile, string | null>;
}

const schema = {
  type: "object",
  additionalProperties: false,
  required: ["version", "baseUrl", "sha256"],
  properties: {
    version: { type: "string", pattern: "^[0-9]+\\.[0-9]+\\.[0-9]+$" },
    baseUrl: { type: "string", pattern: "^https?://[^\\s]+[^/\\s]$" },
    sha256: {
      type: "object",
      additionalProperties: false,
      required: [...RELEASE_FILES],
      properties: Object.fromEntries(
        RELEASE_FILES.map((f) => [f, { type: ["string", "null"], pattern: "^[0-9a-f]{64}$" }]),
      ),
    },
  },
};
const validate = new Ajv2020({ allErrors: true }).compile<ReleasePin>(schema);

/** Parses and checks a release pin; errors name the file and the field. */
export function parseReleasePin(text: string, where: string): ReleasePin {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not JSON: ${(e as Error).message}`);
  }
  if (!validate(data)) {
    const why = (validate.errors ?? [])
      .map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`)
      .join("; ");
    throw new Error(`${where}: not a dpndncy release pin: ${why}`);
  }
  return data;
}

/** The pin shipped with this copy of the action (dist/release.json beside the bundle). */
export function loadReleasePin(): ReleasePin {
  const url = new URL("./release.json", import.meta.url);
  const path = fileURLToPath(url);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(
      `the action's release pin ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): this copy of the action is incomplete`,
    );
  }
  return parseReleasePin(text, path);
}

export class UnknownArchError extends Error {
  constructor(readonly arch: string) {
    super(
      `this runner's architecture is ${arch}; dpndncy releases have an agent for Linux ${AGENT_ARCHES.join(" and ")} only (x86_64 and aarch64). Set agent-url and agent-sha256 to a build of your own for this architecture.`,
    );
    this.name = "UnknownArchError";
  }
}

/**
 * The agent architecture for this runner: RUNNER_ARCH as the GitHub runner names it (X64,
 * ARM64, X86, ARM), else Node's own process.arch. Anything else is an error, never a guess.
 */
export function agentArch(runnerArch: string | undefined, nodeArch: string): AgentArch {
  const a = (runnerArch?.trim() || nodeArch).toLowerCase();
  if (a === "x64" || a === "amd64" || a === "x86_64") return "amd64";
  if (a === "arm64" || a === "aarch64") return "arm64";
  throw new UnknownArchError(runnerArch?.trim() ? `${runnerArch.trim()} (RUNNER_ARCH)` : a);
}
