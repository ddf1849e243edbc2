import * as core from "@actions/core";
import { startMonitoring } from "./start.js";

// pre: runs before every other step of the job. Failing here fails the job: monitoring that
// silently did not start would produce a trace that claims more than it saw.
startMonitoring("pre").catch((e: unknown) => {
  core.setFailed(`dpndncy: could not start the agent: ${(e as Error).message}`);
});
