/**
 * The trace artifact's name. Names must be unique in a run, and every leg of a matrix has the
 * same GITHUB_JOB, so the default carries the leg's matrix values and a hash of them (the
 * `matrix` input, `${{ toJSON(matrix) }}`, read the way github/codeql-action reads it):
 * without that, every leg after the first would upload nothing. Pure: no @actions/* here,
 * so pre's bundle does not carry the artifact client.
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "../policy/load.js";

type Env = Readonly<Record<string, string | undefined>>;

/** Characters @actions/artifact refuses in a name. */
const FORBIDDEN = /["\\:<>|*?\r\n/]/;

/** Why a name cannot be an artifact's, or undefined when it can. */
export function artifactNameProblem(name: string): string | undefined {
  return FORBIDDEN.test(name)
    ? `"${name}" contains a character artifact names cannot hold (" : < > | * ? \\ / CR LF)`
    : undefined;
}

/**
 * `dpndncy-trace-<job>[-<matrix values>-<hash>]-attempt<n>`, or the `artifact-name` input
 * (with `-attempt<n>` appended on a re-run, whose first attempt may hold the name).
 */
export function artifactName(given: string | undefined, matrixJson: string, env: Env): string {
  const attempt = env.GITHUB_RUN_ATTEMPT ?? "1";
  if (given) return attempt === "1" ? given : `${given}-attempt${attempt}`;
  let leg = "";
  let matrix: unknown = null;
  try {
    matrix = matrixJson.trim() === "" ? null : JSON.parse(matrixJson);
  } catch {
    matrix = matrixJson; // not JSON: still tells legs apart
  }
  if (matrix !== null && !(typeof matrix === "object" && Object.keys(matrix).length === 0)) {
    const values =
      typeof matrix === "object"
        ? Object.keys(matrix as object)
            .sort()
            .map((k) => {
              const v = (matrix as Record<string, unknown>)[k];
              return typeof v === "object" ? "" : String(v);
            })
        : [String(matrix)];
    const readable = values
      .join("-")
      .replace(/[^A-Za-z0-9._-]+/g, "-")
      .replace(/-+/g, "-")
      .replace(/^-|-$/g, "")
      .slice(0, 40);
    const hash = createHash("sha256").update(canonicalJson(matrix)).digest("hex").slice(0, 8);
    leg = `${readable ? `-${readable}` : ""}-${hash}`;
  }
  return `dpndncy-trace-${env.GITHUB_JOB ?? "job"}${leg}-attempt${attempt}`;
}
