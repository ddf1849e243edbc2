/**
 * Uploads the log, statement and bundle as one workflow artifact with @actions/artifact.
 * A failed upload is a warning, not a failed job: the files stay in RUNNER_TEMP and their
 * paths are the action's outputs.
 * The name comes from artifact-name.ts.
 */
import { basename } from "node:path";
import { DefaultArtifactClient } from "@actions/artifact";
import * as core from "@actions/core";

type Env = Readonly<Record<string, string | undefined>>;

export interface Uploaded {
  name: string;
  id: number | undefined;
  /** The artifact's page, where GitHub gives it one (ID known). */
  url: string | undefined;
}

export async function uploadTrace(
  name: string,
  files: string[],
  rootDir: string,
  env: Env = process.env,
): Promise<Uploaded | null> {
  try {
    const client = new DefaultArtifactClient();
    const r = await client.uploadArtifact(name, files, rootDir, { retentionDays: 90 });
    core.info(
      `dpndncy: uploaded artifact ${name} (${files.map((f) => basename(f)).join(", ")}), id ${r.id ?? "?"}`,
    );
    const url =
      r.id !== undefined && env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID
        ? `${env.GITHUB_SERVER_URL ?? "https://github.com"}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}/artifacts/${r.id}`
        : undefined;
    return { name, id: r.id, url };
  } catch (e) {
    core.warning(
      `dpndncy: could not upload the trace artifact ${name} (${(e as Error).message}); the files are at ${files.join(", ")}`,
    );
    return null;
  }
}
