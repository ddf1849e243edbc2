import * as core from "@actions/core";

// Entry point for the action's post stage; wired up in the GitHub Action issue.
core.setFailed("dpndncy: the GitHub Action's post stage is not implemented yet");
