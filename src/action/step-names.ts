/** Step names for the summary: best effort, never a failed post step. */
import * as core from "@actions/core";
import { fetchJobSteps, firstSeen, matchStepNames } from "../report/step-names.js";

export async function stepNamesFor(
  log: string,
  token: string | undefined,
): Promise<Record<string, string>> {
  const env = process.env;
  if (!token || !env.GITHUB_REPOSITORY || !env.GITHUB_RUN_ID) return {};
  try {
    const steps = await fetchJobSteps({
      apiUrl: env.GITHUB_API_URL ?? "https://api.github.com",
      repository: env.GITHUB_REPOSITORY,
      runId: env.GITHUB_RUN_ID,
      attempt: env.GITHUB_RUN_ATTEMPT ?? "1",
      token,
      ...(env.RUNNER_NAME ? { runnerName: env.RUNNER_NAME } : {}),
    });
    if (!steps) {
      core.info("dpndncy: this job was not found in the jobs API; the summary shows step ids");
      return {};
    }
    return matchStepNames(await firstSeen(log), steps);
  } catch (e) {
    const message = `dpndncy: step names unavailable (${(e as Error).message}); the summary shows step ids`;
    // a missing permission is the user's to fix: a warning they see, not a log line
    if ((e as Error).message.includes("actions: read")) core.warning(message);
    else core.info(message);
    return {};
  }
}
