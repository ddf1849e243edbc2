/**
 * The end of a monitored job, shared by the action's post stage and `dpndncy stop`:
 * summarize the log (one streaming pass), build the in-toto Statement, sign it into a
 * Sigstore bundle, and write both beside the log. Pure of @actions/*: callers pass the token.
 */
import { writeFile } from "node:fs/promises";
import type { SerializedBundle } from "@sigstore/bundle";
import { type Endpoints, signKeyless, signWithKey, staticToken } from "../attest/sign.js";
import { buildStatement, serializeStatement } from "../attest/statement.js";
import type { CiIdentity } from "../platform/detect.js";
import { summarizeFile } from "../trace/summarize.js";
import type { Predicate } from "../trace/types.js";

export type SignChoice =
  | { kind: "none" }
  | { kind: "key"; privateKeyPem: string; rekorURL?: string; tsaURL?: string }
  | { kind: "keyless"; token: string; endpoints: Endpoints };

export interface FinishInput {
  log: string;
  ci: CiIdentity | null;
  sign: SignChoice;
}

export interface Finished {
  predicate: Predicate;
  statementPath: string;
  bundlePath: string | null;
}

export const statementPathFor = (log: string) => `${log}.intoto.json`;
export const bundlePathFor = (log: string) => `${log}.sigstore.json`;

export async function finishTrace(i: FinishInput): Promise<Finished> {
  const predicate = await summarizeFile(i.log, { ci: i.ci });
  const payload = serializeStatement(buildStatement(predicate));
  const statementPath = statementPathFor(i.log);
  await writeFile(statementPath, payload);
  let bundle: SerializedBundle | null = null;
  if (i.sign.kind === "key") {
    bundle = await signWithKey(payload, i.sign);
  } else if (i.sign.kind === "keyless") {
    bundle = await signKeyless(payload, {
      endpoints: i.sign.endpoints,
      identityProvider: staticToken(i.sign.token),
    });
  }
  let bundlePath: string | null = null;
  if (bundle) {
    bundlePath = bundlePathFor(i.log);
    await writeFile(bundlePath, `${JSON.stringify(bundle)}\n`);
  }
  return { predicate, statementPath, bundlePath };
}
