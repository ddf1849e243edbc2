import { describe, expect, it } from "vitest";
import { detectPlatform } from "../../src/platform/detect.js";

// Recorded environments: variable names as each platform documents them.
describe("detectPlatform", () => {
  it("GitHub Actions, a re-run (attempt 3), with the workflow file from GITHUB_WORKFLOW_REF", () => {
    const d = detectPlatform({
      GITHUB_ACTIONS: "true",
      GITHUB_SERVER_URL: "https://github.com",
      GITHUB_REPOSITORY: "acme/web",
      GITHUB_RUN_ID: "9876543210",
      GITHUB_RUN_ATTEMPT: "3",
      GITHUB_JOB: "build",
      GITHUB_SHA: "0123456789abcdef0123456789abcdef01234567",
      GITHUB_REF: "refs/pull/42/merge",
      GITHUB_WORKFLOW_REF: "acme/web/.github/workflows/ci.yml@refs/pull/42/merge",
      GITHUB_ACTION: "__run_2",
    });
    expect(d.identity).toEqual({
      platform: "github",
      serverUrl: "https://github.com",
      repository: "acme/web",
      runId: "9876543210",
      runAttempt: "3",
      jobId: "build",
      jobName: "build",
      commit: "0123456789abcdef0123456789abcdef01234567",
      ref: "refs/pull/42/merge",
      workflow: ".github/workflows/ci.yml",
    });
    expect(d.step.markers).toEqual(["GITHUB_ACTION"]);
    expect(d.alsoMatched).toEqual([]);
  });

  it("GitLab merge-request pipeline uses the MR ref, not the branch", () => {
    const d = detectPlatform({
      GITLAB_CI: "true",
      CI_SERVER_URL: "https://gitlab.example.com",
      CI_PROJECT_PATH: "group/sub/project",
      CI_PIPELINE_ID: "1001",
      CI_PIPELINE_SOURCE: "merge_request_event",
      CI_MERGE_REQUEST_IID: "17",
      CI_COMMIT_REF_NAME: "feature/x",
      CI_JOB_ID: "555",
      CI_JOB_NAME: "test",
      CI_COMMIT_SHA: "a".repeat(40),
      CI_CONFIG_PATH: ".gitlab-ci.yml",
    });
    expect(d.identity.platform).toBe("gitlab");
    expect(d.identity.ref).toBe("refs/merge-requests/17/head");
    expect(d.identity.jobId).toBe("555");
    expect(d.identity.repository).toBe("group/sub/project");
    expect(d.step.granularity).toBe("job");
  });

  it("GitLab branch and tag pipelines", () => {
    expect(detectPlatform({ GITLAB_CI: "true", CI_COMMIT_BRANCH: "main" }).identity.ref).toBe(
      "refs/heads/main",
    );
    expect(
      detectPlatform({ GITLAB_CI: "true", CI_COMMIT_TAG: "v1.2.0", CI_COMMIT_REF_NAME: "v1.2.0" })
        .identity.ref,
    ).toBe("refs/tags/v1.2.0");
  });

  it("Jenkins without a stage still identifies the job; STAGE_NAME is the step marker", () => {
    const d = detectPlatform({
      JENKINS_URL: "https://ci.example.com/",
      BUILD_ID: "77",
      BUILD_NUMBER: "77",
      BUILD_TAG: "jenkins-web-main-77",
      JOB_NAME: "web/main",
      GIT_COMMIT: "b".repeat(40),
      GIT_BRANCH: "origin/main",
    });
    expect(d.identity).toMatchObject({
      platform: "jenkins",
      runId: "77",
      jobName: "web/main",
      commit: "b".repeat(40),
    });
    expect(d.step.markers).toEqual(["STAGE_NAME"]);
  });

  it.each([
    [
      "circleci",
      {
        CIRCLECI: "true",
        CIRCLE_PROJECT_USERNAME: "o",
        CIRCLE_PROJECT_REPONAME: "r",
        CIRCLE_SHA1: "c".repeat(40),
        CIRCLE_JOB: "build",
        CIRCLE_BUILD_NUM: "12",
        CIRCLE_BRANCH: "dev",
      },
      { repository: "o/r", jobName: "build", jobId: "12", ref: "refs/heads/dev" },
    ],
    [
      "azure",
      {
        TF_BUILD: "True",
        BUILD_REPOSITORY_NAME: "proj/repo",
        BUILD_BUILDID: "300",
        SYSTEM_JOBATTEMPT: "2",
        SYSTEM_JOBID: "j-1",
        BUILD_SOURCEVERSION: "d".repeat(40),
        BUILD_SOURCEBRANCH: "refs/heads/main",
      },
      { repository: "proj/repo", runId: "300", runAttempt: "2", ref: "refs/heads/main" },
    ],
    [
      "bitbucket",
      {
        BITBUCKET_BUILD_NUMBER: "9",
        BITBUCKET_REPO_FULL_NAME: "team/repo",
        BITBUCKET_COMMIT: "e".repeat(40),
        BITBUCKET_STEP_UUID: "{step}",
        BITBUCKET_TAG: "v1",
      },
      { repository: "team/repo", jobId: "{step}", ref: "refs/tags/v1" },
    ],
    [
      "buildkite",
      {
        BUILDKITE: "true",
        BUILDKITE_REPO: "git@example.com:o/r.git",
        BUILDKITE_BUILD_ID: "uuid-1",
        BUILDKITE_RETRY_COUNT: "1",
        BUILDKITE_JOB_ID: "job-1",
        BUILDKITE_LABEL: ":npm: test",
        BUILDKITE_COMMIT: "f".repeat(40),
        BUILDKITE_BRANCH: "main",
      },
      { runAttempt: "1", jobName: ":npm: test" },
    ],
    [
      "drone",
      {
        DRONE: "true",
        DRONE_SYSTEM_PROTO: "https",
        DRONE_SYSTEM_HOST: "drone.example.com",
        DRONE_REPO: "o/r",
        DRONE_BUILD_NUMBER: "5",
        DRONE_COMMIT_SHA: "1".repeat(40),
        DRONE_COMMIT_REF: "refs/heads/main",
      },
      { serverUrl: "https://drone.example.com", runId: "5" },
    ],
  ] as const)("%s", (platform, env, expected) => {
    const d = detectPlatform(env);
    expect(d.identity.platform).toBe(platform);
    expect(d.identity).toMatchObject(expected);
  });

  it("Tekton is recognised by its /tekton/steps mount and attributes by container", () => {
    const d = detectPlatform({ HOSTNAME: "build-pod-abc" }, { tektonStepsDir: true });
    expect(d.identity.platform).toBe("tekton");
    expect(d.step.granularity).toBe("container");
  });

  it("an environment that looks like two platforms picks deterministically and says so", () => {
    const env = { GITHUB_ACTIONS: "true", GITLAB_CI: "true", GITHUB_REPOSITORY: "a/b" };
    const d = detectPlatform(env);
    expect(d.identity.platform).toBe("github");
    expect(d.alsoMatched).toEqual(["gitlab"]);
    // Same answer whatever the key order of the environment.
    expect(detectPlatform({ GITLAB_CI: "true", GITHUB_ACTIONS: "true" }).identity.platform).toBe(
      "github",
    );
  });

  it("no CI variables: local, and empty values do not count", () => {
    expect(detectPlatform({}).identity).toEqual({ platform: "local" });
    expect(detectPlatform({ GITHUB_ACTIONS: "", GITLAB_CI: "false" }).identity.platform).toBe(
      "local",
    );
  });
});
