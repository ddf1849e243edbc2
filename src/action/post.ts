import * as core from "@actions/core";
import { runPost } from "./finish-job.js";

// post: runs even when the job failed (post-if defaults to always()). It must never throw
// past this point: a broken post step would hide the job's own result.
runPost().catch((e: unknown) => {
  core.setFailed(`dpndncy: ${(e as Error).message}`);
});
