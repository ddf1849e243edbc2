/**
 * The baseline in the GitHub Actions cache: a thin adapter over @actions/cache (injected, so
 * tests drive it with a fake or against a local stand-in of the cache service). Every failure
 * becomes a warning and "no baseline": a cache outage never fails the job.
 *
 * Keys: caches are immutable, so every job saves a new entry
 * `dpndncy-baseline-<repo>-<workflow>-<job>-<run_id>-<attempt>` and restores the newest one
 * whose key starts with `dpndncy-baseline-<repo>-<workflow>-<job>-`. The cache's own scoping
 * by ref means a pull request reads its base branch's baseline but cannot write it.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/** The part of @actions/cache this adapter uses. */
export interface CacheClient {
  isFeatureAvailable(): boolean;
  restoreCache(
    paths: string[],
    primaryKey: string,
    restoreKeys?: string[],
  ): Promise<string | undefined>;
  saveCache(paths: string[], key: string): Promise<number>;
}

export interface BaselineKeys {
  key: string;
  restorePrefix: string;
}

const part = (s: string | undefined, def: string) =>
  (s && s.trim() !== "" ? s : def).replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 100);

/** Keys from the runner's environment: repository, workflow file, job id, run. */
export function baselineKeys(env: Readonly<Record<string, string | undefined>>): BaselineKeys {
  // GITHUB_WORKFLOW_REF = owner/repo/.github/workflows/ci.yml@refs/heads/main: the file is
  // stable across renames of the workflow's display name and across branches.
  const ref = env.GITHUB_WORKFLOW_REF?.replace(/@.*$/, "").split("/").slice(2).join("/");
  const prefix = `dpndncy-baseline-${part(env.GITHUB_REPOSITORY, "repo")}-${part(
    ref || env.GITHUB_WORKFLOW,
    "workflow",
  )}-${part(env.GITHUB_JOB, "job")}-`;
  return {
    key: `${prefix}${part(env.GITHUB_RUN_ID, "run")}-${part(env.GITHUB_RUN_ATTEMPT, "1")}`,
    restorePrefix: prefix,
  };
}

export interface Restored {
  /** The baseline text, null when there is none (or it could not be restored). */
  text: string | null;
  matchedKey?: string;
}

/**
 * Restores the newest baseline into `file` and reads it. `file` is removed first so a stale
 * copy on a reused (self-hosted) runner is never mistaken for a restored one.
 */
export async function restoreBaseline(
  client: CacheClient,
  file: string,
  keys: BaselineKeys,
  warn: (m: string) => void,
): Promise<Restored> {
  try {
    await rm(file, { force: true });
    await mkdir(dirname(file), { recursive: true });
    if (!client.isFeatureAvailable()) {
      warn("dpndncy learn: the Actions cache service is not available; no baseline restored");
      return { text: null };
    }
    const matchedKey = await client.restoreCache([file], keys.key, [keys.restorePrefix]);
    if (!matchedKey) return { text: null };
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch {
      // the entry existed but did not hold the file: treat it as a corrupt baseline
      text = "";
    }
    return { text, matchedKey };
  } catch (e) {
    warn(`dpndncy learn: restoring the baseline from the cache failed: ${(e as Error).message}`);
    return { text: null };
  }
}

/** Writes and saves the baseline; false (after a warning) when the cache refused it. */
export async function saveBaseline(
  client: CacheClient,
  file: string,
  keys: BaselineKeys,
  text: string,
  warn: (m: string) => void,
): Promise<boolean> {
  try {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, text);
    if (!client.isFeatureAvailable()) {
      warn("dpndncy learn: the Actions cache service is not available; the baseline is not saved");
      return false;
    }
    const id = await client.saveCache([file], keys.key);
    if (id === -1) {
      // @actions/cache has already said why (warning or info); say what it means for us
      warn(`dpndncy learn: the baseline was not saved to the cache (key ${keys.key})`);
      return false;
    }
    return true;
  } catch (e) {
    warn(`dpndncy learn: saving the baseline to the cache failed: ${(e as Error).message}`);
    return false;
  }
}
