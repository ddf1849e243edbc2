import * as core from "@actions/core";

// Entry point for the action's pre stage; wired up in the GitHub Action issue.
core.setFailed("dpndncy: the GitHub Action's pre stage is not implemented yet");
