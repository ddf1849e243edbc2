import * as core from "@actions/core";

// Entry point for the action's main stage; wired up in the GitHub Action issue.
core.setFailed("dpndncy: the GitHub Action's main stage is not implemented yet");
