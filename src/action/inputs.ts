/**
 * The action's inputs, validated at the edge into one typed object. Every error names the
 * input and the bad value; nothing downstream reads INPUT_* directly.
 */
import type { Mode } from "../agent/control.js";
import { CONTAINERS_CHOICES, type ContainersChoice } from "../agent/runtimes.js";
import { normaliseSha256 } from "../agent/verify-binary.js";
import { type Endpoint, parseEndpointList } from "../policy/endpoint.js";
import { artifactNameProblem } from "./artifact-name.js";

export type SignMode = "keyless" | "key" | "none";
export type FailOn = "none" | "blocked" | "sensitive-file";

export interface ActionInputs {
  mode: Mode;
  allowedEndpoints: Endpoint[];
  policy?: string;
  sensitivePaths: string[];
  sign: SignMode;
  signingKey?: string;
  fulcioUrl?: string;
  rekorUrl?: string;
  tsaUrl?: string;
  failOn: FailOn;
  uploadArtifact: boolean;
  /** Name of the artifact; default from the job, the matrix leg and the attempt (artifact.ts). */
  artifactName?: string;
  /** `${{ toJSON(matrix) }}` of the job (the input's default): tells matrix legs apart. */
  matrix: string;
  /** enforce mode on GitHub: allow the endpoints the job itself needs (github-endpoints.ts). */
  allowGithubEndpoints: boolean;
  /** learn mode: the window N (stable after N jobs in a row add nothing new). */
  learnJobs: number;
  agentUrl?: string;
  /** Token to read this run's jobs (step names); needs `actions: read`. */
  githubToken?: string;
  agentSha256?: string;
  /** Take sudo (and the Docker socket) away from later steps (src/harden). */
  harden: "none" | "sudo" | "sudo-and-containers";
  /** enforce: judge the host's containers (auto: on a single-job host; src/agent/runtimes.ts). */
  containers: ContainersChoice;
  /** enforce: cgroups where a runtime puts the job's containers (docs/containers.md). */
  containerCgroups: string[];
  /** enforce: slices holding containers' scopes among other services (systemd driver). */
  containerSlices: string[];
  /** enforce: the container runtime daemon's cgroup (image pulls, Docker's embedded DNS). */
  runtimeCgroups: string[];
}

export class InputError extends Error {
  constructor(input: string, message: string) {
    super(`input \`${input}\`: ${message}`);
    this.name = "InputError";
  }
}

type Getter = (name: string) => string;

function oneOf<T extends string>(get: Getter, name: string, allowed: readonly T[], def: T): T {
  const raw = get(name).trim();
  if (raw === "") return def;
  if ((allowed as readonly string[]).includes(raw)) return raw as T;
  throw new InputError(name, `"${raw}" is not one of ${allowed.join(", ")}`);
}

function bool(get: Getter, name: string, def: boolean): boolean {
  const raw = get(name).trim().toLowerCase();
  if (raw === "") return def;
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw new InputError(name, `"${raw}" is not true or false`);
}

/** One cgroup path per line (below the cgroup v2 root; never the root itself). */
function cgroupList(get: Getter, name: string): string[] {
  const out: string[] = [];
  for (const raw of get(name).split("\n")) {
    const l = raw.trim();
    if (l === "" || l.startsWith("#")) continue;
    if (/[\s#]/.test(l) || l.split("/").includes("..") || l === "/")
      throw new InputError(name, `"${l}" is not a cgroup path below the cgroup v2 root`);
    out.push(l);
  }
  return out;
}

function url(get: Getter, name: string): string | undefined {
  const raw = get(name).trim();
  if (raw === "") return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new InputError(name, `"${raw}" is not a URL`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw new InputError(name, `"${raw}" must be an http(s) URL`);
  }
  return raw;
}

function learnJobs(raw: string): number {
  const v = raw.trim();
  if (v === "") return 5;
  if (!/^\d{1,3}$/.test(v) || Number(v) < 1 || Number(v) > 100)
    throw new InputError("learn-jobs", `"${v}" is not a number 1-100`);
  return Number(v);
}

function optional(get: Getter, name: string): string | undefined {
  const raw = get(name).trim();
  return raw === "" ? undefined : raw;
}

/** `get` is core.getInput in the action and a plain map in tests. */
export function parseInputs(get: Getter): ActionInputs {
  const sign = oneOf(get, "sign", ["keyless", "key", "none"] as const, "keyless");
  const signingKey = optional(get, "signing-key");
  if (sign === "key" && !signingKey) {
    throw new InputError(
      "signing-key",
      "is required when `sign: key` (a P-256 private key in PEM)",
    );
  }
  const agentSha = optional(get, "agent-sha256");
  const inputs: ActionInputs = {
    mode: oneOf(get, "mode", ["observe", "learn", "enforce"] as const, "observe"),
    allowedEndpoints: parseEndpointList(get("allowed-endpoints"), "input `allowed-endpoints`"),
    sensitivePaths: get("sensitive-paths")
      .split("\n")
      .map((s) => s.trim())
      .filter((s) => s !== "" && !s.startsWith("#")),
    sign,
    failOn: oneOf(get, "fail-on", ["none", "blocked", "sensitive-file"] as const, "none"),
    uploadArtifact: bool(get, "upload-artifact", true),
    allowGithubEndpoints: bool(get, "allow-github-endpoints", true),
    learnJobs: learnJobs(get("learn-jobs")),
    harden: oneOf(get, "harden", ["none", "sudo", "sudo-and-containers"] as const, "none"),
    matrix: get("matrix").trim(),
    containers: oneOf(get, "containers", CONTAINERS_CHOICES, "auto"),
    containerCgroups: cgroupList(get, "container-cgroups"),
    containerSlices: cgroupList(get, "container-slices"),
    runtimeCgroups: cgroupList(get, "runtime-cgroups"),
  };
  const artifactName = optional(get, "artifact-name");
  if (artifactName) {
    const problem = artifactNameProblem(artifactName);
    if (problem) throw new InputError("artifact-name", problem);
    inputs.artifactName = artifactName;
  }
  const githubToken = optional(get, "github-token");
  if (githubToken) inputs.githubToken = githubToken;
  const policy = optional(get, "policy");
  if (policy) inputs.policy = policy;
  if (signingKey) inputs.signingKey = signingKey;
  for (const [key, name] of [
    ["fulcioUrl", "fulcio-url"],
    ["rekorUrl", "rekor-url"],
    ["tsaUrl", "tsa-url"],
    ["agentUrl", "agent-url"],
  ] as const) {
    const value = url(get, name);
    if (value) inputs[key] = value;
  }
  if (agentSha) {
    try {
      inputs.agentSha256 = normaliseSha256(agentSha, "agent-sha256");
    } catch (e) {
      throw new InputError("agent-sha256", (e as Error).message);
    }
  }
  if (inputs.agentUrl && !inputs.agentSha256) {
    throw new InputError(
      "agent-url",
      "needs `agent-sha256`: dpndncy never runs an unverified binary",
    );
  }
  for (const p of inputs.sensitivePaths) {
    if (!p.startsWith("/") && !p.startsWith("~/")) {
      throw new InputError("sensitive-paths", `"${p}" must be absolute or start with ~/`);
    }
  }
  return inputs;
}
