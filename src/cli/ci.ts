// The job identity for a predicate, from the platform detector (src/platform, pure).
import { detectPlatform } from "../platform/detect.js";
import type { CiIdentity } from "../trace/types.js";

export function ciIdentity(env: Readonly<Record<string, string | undefined>>): CiIdentity | null {
  const { identity } = detectPlatform(env);
  // Outside CI there is no job to name; "local" would only look like an identity.
  return identity.platform === "local" ? null : identity;
}
