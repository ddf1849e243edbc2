// Is the repository public? Decides whether the public Rekor may be used (see sign.ts).
// Unknown counts as private, as in @actions/attest, which picks GitHub's own instance unless
// the event payload says the repository is public: leaking a private repository's name and
// job details into a permanent public log cannot be undone; a refused signature can be retried.
import type { CiIdentity } from "../trace/types.js";

export type Visibility = "public" | "private" | "unknown";

export function repositoryVisibility(
  ci: CiIdentity | null,
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string,
): Visibility {
  if (ci?.platform === "github") {
    // The event payload is the only place GitHub states visibility (what @actions/github reads).
    const path = env.GITHUB_EVENT_PATH;
    if (!path) return "unknown";
    try {
      const event = JSON.parse(readFile(path)) as { repository?: { visibility?: unknown } };
      const v = event.repository?.visibility;
      return v === "public" ? "public" : typeof v === "string" ? "private" : "unknown";
    } catch {
      return "unknown";
    }
  }
  if (ci?.platform === "gitlab") {
    const v = env.CI_PROJECT_VISIBILITY;
    return v === "public" ? "public" : v ? "private" : "unknown";
  }
  return "unknown";
}
