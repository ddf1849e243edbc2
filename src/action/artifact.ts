/**
 * Uploads the log, statement and bundle as one workflow artifact with @actions/artifact.
 * A failed upload is a warning, not a failed job: the files stay in RUNNER_TEMP and their
 * paths are the action's outputs.
 */
import { basename } from "node:path";
import { DefaultArtifactClient } from "@actions/artifact";
import * as core from "@actions/core";

export async function uploadTrace(files: string[], rootDir: string): Promise<void> {
  const name = `dpndncy-trace-${process.env.GITHUB_JOB ?? "job"}${process.env.GITHUB_RUN_ATTEMPT ? `-attempt${process.env.GITHUB_RUN_ATTEMPT}` : ""}`;
  try {
    const client = new DefaultArtifactClient();
    const r = await client.uploadArtifact(name, files, rootDir, { retentionDays: 90 });
    core.info(
      `dpndncy: uploaded artifact ${name} (${files.map((f) => basename(f)).join(", ")}), id ${r.id ?? "?"}`,
    );
  } catch (e) {
    core.warning(
      `dpndncy: could not upload the trace artifact (${(e as Error).message}); the files are at ${files.join(", ")}`,
    );
  }
}
