/** Names of the values pre/main hand to post through core.saveState (STATE_<name>). */
export const STATE = {
  agent: "agent",
  log: "log",
  stateDir: "state_dir",
  startedIn: "started_in",
  mode: "mode",
} as const;
