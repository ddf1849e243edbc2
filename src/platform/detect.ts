/**
 * CI platform detection and job identity, from the environment alone (pure: no I/O).
 *
 * Each platform is described once, as data: how to recognise it, how to read the job
 * identity, and which environment variables mark a step in the processes the runner
 * starts. The agent reads those marker variables in the kernel at exec time and the
 * step identity is inherited down the process tree (see agent-c/ and README "Step attribution").
 */

export type PlatformId =
  | "github"
  | "gitlab"
  | "jenkins"
  | "circleci"
  | "azure"
  | "bitbucket"
  | "tekton"
  | "buildkite"
  | "drone"
  | "local";

/** The job identity recorded in the agent start record and in the attestation. */
export interface CiIdentity {
  platform: PlatformId;
  serverUrl?: string;
  repository?: string;
  runId?: string;
  runAttempt?: string;
  jobId?: string;
  jobName?: string;
  commit?: string;
  ref?: string;
  workflow?: string;
}

/** What a step looks like from inside the processes it starts. */
export interface StepAttribution {
  /** Environment variables read at exec, first present wins; empty when only the job is known. */
  markers: string[];
  /** The granularity a user gets on this platform, for the README and the summary. */
  granularity: "step" | "task" | "stage" | "job" | "container" | "none";
  why: string;
}

export interface Detection {
  identity: CiIdentity;
  step: StepAttribution;
  /** Other platforms whose variables were also present (an ambiguous environment). */
  alsoMatched: PlatformId[];
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Facts that are not environment variables (Tekton is recognised by its /tekton mount). */
export interface HostFacts {
  tektonStepsDir?: boolean;
}

interface PlatformSpec {
  id: PlatformId;
  matches(env: Env, host: HostFacts): boolean;
  identity(env: Env): Omit<CiIdentity, "platform">;
  step: StepAttribution;
}

const v = (env: Env, name: string): string | undefined => {
  const value = env[name];
  return value === undefined || value === "" ? undefined : value;
};

const truthy = (env: Env, name: string): boolean => {
  const value = v(env, name)?.toLowerCase();
  return value === "true" || value === "1" || value === "yes";
};

/** Drops undefined fields so identities compare and serialise cleanly. */
function compact<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, x]) => x !== undefined)) as T;
}

function githubWorkflowFile(workflowRef: string | undefined): string | undefined {
  // GITHUB_WORKFLOW_REF = owner/repo/.github/workflows/ci.yml@refs/heads/main
  if (!workflowRef) return undefined;
  const at = workflowRef.indexOf("@");
  const path = at >= 0 ? workflowRef.slice(0, at) : workflowRef;
  const i = path.indexOf("/.github/");
  return i >= 0 ? path.slice(i + 1) : path;
}

function gitlabRef(env: Env): string | undefined {
  const mrIid = v(env, "CI_MERGE_REQUEST_IID");
  if (v(env, "CI_PIPELINE_SOURCE") === "merge_request_event" && mrIid) {
    return `refs/merge-requests/${mrIid}/head`;
  }
  const tag = v(env, "CI_COMMIT_TAG");
  if (tag) return `refs/tags/${tag}`;
  const branch = v(env, "CI_COMMIT_BRANCH") ?? v(env, "CI_COMMIT_REF_NAME");
  return branch ? `refs/heads/${branch}` : undefined;
}

/** Precedence order: when an environment matches several, the first one here wins. */
export const PLATFORMS: readonly PlatformSpec[] = [
  {
    id: "github",
    matches: (env) => truthy(env, "GITHUB_ACTIONS"),
    identity: (env) => ({
      serverUrl: v(env, "GITHUB_SERVER_URL") ?? "https://github.com",
      repository: v(env, "GITHUB_REPOSITORY"),
      runId: v(env, "GITHUB_RUN_ID"),
      runAttempt: v(env, "GITHUB_RUN_ATTEMPT"),
      jobId: v(env, "GITHUB_JOB"),
      jobName: v(env, "GITHUB_JOB"),
      commit: v(env, "GITHUB_SHA"),
      ref: v(env, "GITHUB_REF"),
      workflow: githubWorkflowFile(v(env, "GITHUB_WORKFLOW_REF")),
    }),
    step: {
      markers: ["GITHUB_ACTION"],
      granularity: "step",
      why: "the runner sets GITHUB_ACTION (the step id, or __run_N) in each step's environment",
    },
  },
  {
    id: "gitlab",
    matches: (env) => truthy(env, "GITLAB_CI"),
    identity: (env) => ({
      serverUrl: v(env, "CI_SERVER_URL"),
      repository: v(env, "CI_PROJECT_PATH"),
      runId: v(env, "CI_PIPELINE_ID"),
      jobId: v(env, "CI_JOB_ID"),
      jobName: v(env, "CI_JOB_NAME"),
      commit: v(env, "CI_COMMIT_SHA"),
      ref: gitlabRef(env),
      workflow: v(env, "CI_CONFIG_PATH"),
    }),
    step: {
      // DPNDNCY_STEP is exported by our component between script phases; CI_JOB_NAME is the floor.
      markers: ["DPNDNCY_STEP", "CI_JOB_NAME"],
      granularity: "job",
      why: "one GitLab job is one shell; the runner marks no script phase, so phases are told apart only where our component exports DPNDNCY_STEP",
    },
  },
  {
    id: "jenkins",
    matches: (env) => v(env, "JENKINS_URL") !== undefined && v(env, "BUILD_ID") !== undefined,
    identity: (env) => ({
      serverUrl: v(env, "JENKINS_URL"),
      repository: v(env, "GIT_URL"),
      runId: v(env, "BUILD_NUMBER") ?? v(env, "BUILD_ID"),
      jobId: v(env, "BUILD_TAG"),
      jobName: v(env, "JOB_NAME"),
      commit: v(env, "GIT_COMMIT"),
      ref: v(env, "GIT_BRANCH"),
    }),
    step: {
      markers: ["STAGE_NAME"],
      granularity: "stage",
      why: "Pipeline sets STAGE_NAME inside each stage; freestyle jobs and steps outside a stage are attributed to the job",
    },
  },
  {
    id: "circleci",
    matches: (env) => truthy(env, "CIRCLECI"),
    identity: (env) => ({
      serverUrl: v(env, "CIRCLE_BUILD_URL"),
      repository:
        v(env, "CIRCLE_PROJECT_USERNAME") && v(env, "CIRCLE_PROJECT_REPONAME")
          ? `${v(env, "CIRCLE_PROJECT_USERNAME")}/${v(env, "CIRCLE_PROJECT_REPONAME")}`
          : v(env, "CIRCLE_REPOSITORY_URL"),
      runId: v(env, "CIRCLE_WORKFLOW_ID"),
      jobId: v(env, "CIRCLE_BUILD_NUM"),
      jobName: v(env, "CIRCLE_JOB"),
      commit: v(env, "CIRCLE_SHA1"),
      ref: v(env, "CIRCLE_TAG")
        ? `refs/tags/${v(env, "CIRCLE_TAG")}`
        : v(env, "CIRCLE_BRANCH")
          ? `refs/heads/${v(env, "CIRCLE_BRANCH")}`
          : undefined,
    }),
    step: {
      markers: [],
      granularity: "job",
      why: "CircleCI sets no per-step variable; each `run` step is a fresh shell child of the job's agent, so steps show as separate top-level process trees under the job",
    },
  },
  {
    id: "azure",
    matches: (env) => truthy(env, "TF_BUILD"),
    identity: (env) => ({
      serverUrl: v(env, "SYSTEM_COLLECTIONURI"),
      repository: v(env, "BUILD_REPOSITORY_NAME"),
      runId: v(env, "BUILD_BUILDID"),
      runAttempt: v(env, "SYSTEM_JOBATTEMPT"),
      jobId: v(env, "SYSTEM_JOBID"),
      jobName: v(env, "SYSTEM_JOBDISPLAYNAME") ?? v(env, "AGENT_JOBNAME"),
      commit: v(env, "BUILD_SOURCEVERSION"),
      ref: v(env, "BUILD_SOURCEBRANCH"),
      workflow: v(env, "BUILD_DEFINITIONNAME"),
    }),
    step: {
      markers: ["SYSTEM_TASKDISPLAYNAME", "SYSTEM_TASKINSTANCEID"],
      granularity: "task",
      why: "the agent exports the running task's display name and instance id into each task's environment",
    },
  },
  {
    id: "bitbucket",
    matches: (env) => v(env, "BITBUCKET_BUILD_NUMBER") !== undefined,
    identity: (env) => ({
      serverUrl: v(env, "BITBUCKET_GIT_HTTP_ORIGIN"),
      repository: v(env, "BITBUCKET_REPO_FULL_NAME"),
      runId: v(env, "BITBUCKET_PIPELINE_UUID") ?? v(env, "BITBUCKET_BUILD_NUMBER"),
      jobId: v(env, "BITBUCKET_STEP_UUID"),
      commit: v(env, "BITBUCKET_COMMIT"),
      ref: v(env, "BITBUCKET_TAG")
        ? `refs/tags/${v(env, "BITBUCKET_TAG")}`
        : v(env, "BITBUCKET_BRANCH")
          ? `refs/heads/${v(env, "BITBUCKET_BRANCH")}`
          : undefined,
    }),
    step: {
      markers: ["BITBUCKET_STEP_UUID"],
      granularity: "step",
      why: "each Bitbucket step is its own container with BITBUCKET_STEP_UUID in its environment",
    },
  },
  {
    id: "tekton",
    // Tekton injects no CI variables; every step container has the /tekton/steps mount.
    matches: (_env, host) => host.tektonStepsDir === true,
    identity: (env) => ({
      jobId: v(env, "HOSTNAME"),
      jobName: v(env, "TEKTON_TASKRUN_NAME") ?? v(env, "HOSTNAME"),
      runId: v(env, "TEKTON_PIPELINERUN_NAME"),
    }),
    step: {
      markers: [],
      granularity: "container",
      why: "each Tekton step is its own container: the agent attributes by cgroup (container), not by environment",
    },
  },
  {
    id: "buildkite",
    matches: (env) => truthy(env, "BUILDKITE"),
    identity: (env) => ({
      serverUrl: v(env, "BUILDKITE_BUILD_URL"),
      repository: v(env, "BUILDKITE_REPO"),
      runId: v(env, "BUILDKITE_BUILD_ID"),
      runAttempt: v(env, "BUILDKITE_RETRY_COUNT"),
      jobId: v(env, "BUILDKITE_JOB_ID"),
      jobName: v(env, "BUILDKITE_LABEL"),
      commit: v(env, "BUILDKITE_COMMIT"),
      ref: v(env, "BUILDKITE_BRANCH") ? `refs/heads/${v(env, "BUILDKITE_BRANCH")}` : undefined,
      workflow: v(env, "BUILDKITE_PIPELINE_SLUG"),
    }),
    step: {
      markers: ["BUILDKITE_STEP_KEY", "BUILDKITE_LABEL"],
      granularity: "step",
      why: "each command step runs with BUILDKITE_STEP_KEY (when the user gave a key) and BUILDKITE_LABEL",
    },
  },
  {
    id: "drone",
    matches: (env) => truthy(env, "DRONE"),
    identity: (env) => ({
      serverUrl:
        v(env, "DRONE_SYSTEM_PROTO") && v(env, "DRONE_SYSTEM_HOST")
          ? `${v(env, "DRONE_SYSTEM_PROTO")}://${v(env, "DRONE_SYSTEM_HOST")}`
          : undefined,
      repository: v(env, "DRONE_REPO"),
      runId: v(env, "DRONE_BUILD_NUMBER"),
      jobName: v(env, "DRONE_STAGE_NAME"),
      commit: v(env, "DRONE_COMMIT_SHA"),
      ref: v(env, "DRONE_COMMIT_REF"),
    }),
    step: {
      markers: ["DRONE_STEP_NAME"],
      granularity: "step",
      why: "each Drone step runs with DRONE_STEP_NAME in its environment",
    },
  },
];

const LOCAL: StepAttribution = {
  markers: ["DPNDNCY_STEP"],
  granularity: "none",
  why: "no CI platform detected; set DPNDNCY_STEP to label work by hand",
};

/** Detects the CI platform deterministically: the first match in PLATFORMS order wins. */
export function detectPlatform(env: Env, host: HostFacts = {}): Detection {
  const matched = PLATFORMS.filter((p) => p.matches(env, host));
  const first = matched[0];
  if (!first) {
    return { identity: { platform: "local" }, step: LOCAL, alsoMatched: [] };
  }
  return {
    identity: compact({ platform: first.id, ...first.identity(env) }),
    step: first.step,
    alsoMatched: matched.slice(1).map((p) => p.id),
  };
}

/**
 * Daemon mode (docs/daemon.md): how one host-wide agent tells jobs apart. `marker` is an
 * environment variable whose value is unique per job (the kernel keys the job by `NAME=value`);
 * `project` and `name` are the variables the agent reads from a job's process to pick its
 * policy (first present wins). Only platforms whose runners set a per-job unique value are
 * here; their step markers (from PLATFORMS) come with them.
 */
export interface JobMarkerSpec {
  platform: PlatformId;
  marker: string;
  project: readonly string[];
  name: readonly string[];
}

/**
 * Every per-job unique variable we know, in priority order. The agent holds at most 4 job
 * markers (agent-c/commands/daemon.c), so the supervisor uses DEFAULT_JOB_MARKERS unless daemon.yml
 * names others (`jobMarkers`). Of the other platforms in PLATFORMS: Jenkins' BUILD_TAG is
 * unique per build (one build may span nodes), Azure's SYSTEM_JOBID per job attempt, CircleCI's
 * CIRCLE_WORKFLOW_JOB_ID per job (CIRCLE_BUILD_NUM is only per project), Bitbucket's
 * BITBUCKET_STEP_UUID per step (a step is Bitbucket's job); Drone has no per-job unique value
 * (DRONE_BUILD_NUMBER is per repository) and Tekton sets no variables at all (a TaskRun is its
 * pod: attribute it by container, not by marker).
 */
export const JOB_MARKERS: readonly JobMarkerSpec[] = [
  {
    platform: "gitlab",
    marker: "CI_JOB_ID",
    project: ["CI_PROJECT_PATH"],
    name: ["CI_JOB_NAME"],
  },
  {
    // The runner worker sets it on every process of a job (it finds the job's orphans by it).
    platform: "github",
    marker: "RUNNER_TRACKING_ID",
    project: ["GITHUB_REPOSITORY"],
    name: ["GITHUB_JOB"],
  },
  {
    // The step key, not BUILDKITE_LABEL: a label is display text (emoji, spaces) users change
    // freely, a poor policy file name; and the agent holds only 4 name variables. A step
    // without a key gets its project's default policy.
    platform: "buildkite",
    marker: "BUILDKITE_JOB_ID",
    project: ["BUILDKITE_PIPELINE_SLUG"],
    name: ["BUILDKITE_STEP_KEY"],
  },
  {
    // Set by hand (or a wrapper) where no platform marker exists; last, so a CI variable a job
    // defines cannot move it into another job's log.
    platform: "local",
    marker: "DPNDNCY_JOB",
    project: ["DPNDNCY_PROJECT"],
    name: ["DPNDNCY_JOB_NAME"],
  },
  {
    platform: "jenkins",
    marker: "BUILD_TAG",
    project: ["JOB_NAME"],
    name: ["STAGE_NAME"],
  },
  {
    platform: "azure",
    marker: "SYSTEM_JOBID",
    project: ["BUILD_REPOSITORY_NAME"],
    name: ["SYSTEM_JOBDISPLAYNAME", "AGENT_JOBNAME"],
  },
  {
    platform: "circleci",
    marker: "CIRCLE_WORKFLOW_JOB_ID",
    project: ["CIRCLE_PROJECT_REPONAME"],
    name: ["CIRCLE_JOB"],
  },
  {
    platform: "bitbucket",
    marker: "BITBUCKET_STEP_UUID",
    project: ["BITBUCKET_REPO_FULL_NAME"],
    name: [],
  },
];

/** The job markers a daemon uses unless configured otherwise: GitLab, GitHub, Buildkite, DPNDNCY_JOB. */
export const DEFAULT_JOB_MARKERS: readonly string[] = [
  "CI_JOB_ID",
  "RUNNER_TRACKING_ID",
  "BUILDKITE_JOB_ID",
  "DPNDNCY_JOB",
];

/** The step markers of a platform (LOCAL's DPNDNCY_STEP for "local"). */
export function stepMarkersOf(platform: PlatformId): readonly string[] {
  return PLATFORMS.find((p) => p.id === platform)?.step.markers ?? LOCAL.markers;
}
