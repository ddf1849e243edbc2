/**
 * The action's post stage: stop the agent, summarize, sign, write the job summary, outputs
 * and artifact. Tolerates a missing state and a dead agent, and then says loudly that the
 * trace is incomplete: it never reports a clean trace that is not.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import * as core from "@actions/core";
import { stopAgent } from "../agent/control.js";
import { type BundleInfo, bundleInfo, rekorEntryUrl } from "../attest/bundle-info.js";
import { finishTrace, type SignChoice } from "../job/finish.js";
import { learnInPost } from "../learn/action.js";
import { detectPlatform } from "../platform/detect.js";
import { renderSummary } from "../report/markdown.js";
import { annotate } from "./annotations.js";
import { uploadTrace } from "./artifact.js";
import { artifactName } from "./artifact-name.js";
import { parseInputs } from "./inputs.js";
import { signChoice, verifyCommand } from "./sign-choice.js";
import { elevation } from "./start.js";
import { STATE } from "./state.js";
import { stepNamesFor } from "./step-names.js";

export async function runPost(): Promise<void> {
  const log = core.getState(STATE.log);
  const agent = core.getState(STATE.agent);
  const stateDir = core.getState(STATE.stateDir);
  if (!log || !agent || !stateDir) {
    core.error(
      "dpndncy: the agent was never started in this job (did the pre step fail?): there is NO trace",
    );
    return;
  }
  const inputs = parseInputs((n) => core.getInput(n));

  try {
    const { stats, stderr } = await stopAgent(agent, stateDir, elevation());
    if (!stats.complete) {
      core.error(
        `dpndncy: the agent did not run to the end of the job; the trace is INCOMPLETE and marked so. ${stderr.trim()}`,
      );
    }
  } catch (e) {
    core.error(
      `dpndncy: stopping the agent failed; the trace is INCOMPLETE: ${(e as Error).message}`,
    );
  }

  const ci = detectPlatform(process.env).identity;
  let sign: SignChoice = { kind: "none" };
  let unsignedWhy: string | undefined = inputs.sign === "none" ? "sign: none" : undefined;
  try {
    sign = await signChoice(inputs, ci);
  } catch (e) {
    core.error(`dpndncy: the trace will NOT be signed. ${(e as Error).message}`);
    unsignedWhy = (e as Error).message.split("\n")[0];
  }
  let finished: Awaited<ReturnType<typeof finishTrace>>;
  try {
    finished = await finishTrace({ log, ci, sign });
  } catch (e) {
    if (sign.kind === "none") throw e;
    core.error(`dpndncy: signing failed, the trace is NOT signed: ${(e as Error).message}`);
    sign = { kind: "none" };
    unsignedWhy = "signing failed";
    finished = await finishTrace({ log, ci, sign });
  }
  const p = finished.predicate;
  if (!p.integrity.stopped_cleanly) {
    core.error(`dpndncy: trace integrity problems: ${p.integrity.problems.join(", ")}`);
  }

  // learn mode, and anomalies in any mode once a baseline exists; cache trouble only warns
  let learned: Awaited<ReturnType<typeof learnInPost>> = null;
  try {
    learned = await learnInPost({
      mode: inputs.mode,
      window: inputs.learnJobs,
      predicate: p,
      log,
      dir: dirname(log),
      env: process.env,
    });
  } catch (e) {
    core.warning(`dpndncy learn: ${(e as Error).message}`);
  }

  // upload first, so the summary can link the artifact
  const name = artifactName(inputs.artifactName, inputs.matrix, process.env);
  let uploaded: Awaited<ReturnType<typeof uploadTrace>> = null;
  if (inputs.uploadArtifact) {
    const files = [
      log,
      finished.statementPath,
      ...(finished.bundlePath ? [finished.bundlePath] : []),
      ...(learned?.policy ? [learned.policy.file] : []),
    ];
    uploaded = await uploadTrace(name, files, dirname(log));
  }

  const info = finished.bundlePath ? readBundleInfo(finished.bundlePath) : null;
  const rekorURL = sign.kind === "keyless" ? sign.endpoints.rekorURL : undefined;
  await core.summary
    .addRaw(
      renderSummary(p, {
        verifyCommand: verifyCommand({
          sign,
          info,
          artifact: uploaded?.name,
          cli: ownCli(),
        }),
        stepNames: await stepNamesFor(log, inputs.githubToken),
        signed:
          sign.kind === "keyless"
            ? {
                kind: "keyless",
                identity: info?.identity ?? null,
                tlog:
                  info?.tlogIndex && rekorURL
                    ? { index: info.tlogIndex, url: rekorEntryUrl(rekorURL, info.tlogIndex) }
                    : null,
              }
            : sign.kind === "key"
              ? { kind: "key" }
              : { kind: "none", ...(unsignedWhy ? { why: unsignedWhy } : {}) },
        artifact: uploaded ? { name: uploaded.name, url: uploaded.url } : null,
      }),
    )
    .write();
  if (learned?.markdown) await core.summary.addRaw(learned.markdown).write();
  annotate(p);

  const blocked = p.egress.filter((d) => d.verdict === "deny").reduce((n, d) => n + d.count, 0);
  core.setOutput("log", log);
  core.setOutput("statement", finished.statementPath);
  core.setOutput("bundle", finished.bundlePath ?? "");
  core.setOutput("events", JSON.stringify(p.counts));
  core.setOutput("blocked", String(blocked));
  core.setOutput("policy", learned?.policy?.file ?? "");
  core.setOutput("artifact", uploaded?.name ?? "");

  if (inputs.failOn === "blocked" && blocked > 0) {
    core.setFailed(`dpndncy: ${blocked} egress attempt(s) were blocked (fail-on: blocked)`);
  } else if (inputs.failOn === "sensitive-file" && p.files.length > 0) {
    core.setFailed(
      `dpndncy: sensitive files were read: ${p.files.map((f) => f.path).join(", ")} (fail-on: sensitive-file)`,
    );
  }
}

function readBundleInfo(path: string): BundleInfo | null {
  try {
    return bundleInfo(JSON.parse(readFileSync(path, "utf8")));
  } catch (e) {
    core.warning(`dpndncy: cannot read back the bundle ${path}: ${(e as Error).message}`);
    return null;
  }
}

/**
 * The CLI that verifies, as this very action ships it (dist/cli.js beside dist/post.js), with
 * its SHA-256, so the reader runs exactly that file: fetched from the action's repository at
 * the ref the workflow used (GITHUB_ACTION_REPOSITORY / GITHUB_ACTION_REF).
 */
function ownCli(): { url: string; sha256: string } | undefined {
  const here = process.argv[1] ? dirname(process.argv[1]) : undefined;
  const cli = here ? join(here, "cli.js") : undefined;
  const repo = process.env.GITHUB_ACTION_REPOSITORY;
  const ref = process.env.GITHUB_ACTION_REF;
  if (!cli || !existsSync(cli) || !repo || !ref) return undefined;
  const sha256 = createHash("sha256").update(readFileSync(cli)).digest("hex");
  const server = process.env.GITHUB_SERVER_URL ?? "https://github.com";
  return { url: `${server}/${repo}/raw/${ref}/dist/cli.js`, sha256 };
}
