import * as core from "@actions/core";
import { startMonitoring } from "./start.js";
import { STATE } from "./state.js";

// main: nothing to do when pre ran. `pre` does not run for a local action (`uses: ./`),
// so start here and say plainly that the steps before this one were not seen.
async function main(): Promise<void> {
  if (core.getState(STATE.startedIn) !== "") return;
  core.warning(
    "dpndncy: the pre stage did not run (local action `uses: ./`?); monitoring starts now, and steps before this one were NOT seen",
  );
  await startMonitoring("main");
}

main().catch((e: unknown) => {
  core.setFailed(`dpndncy: could not start the agent: ${(e as Error).message}`);
});
