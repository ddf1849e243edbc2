// renderAgentConfig: the step-marker and ci-identity directives (agent-c/records/steps.c parses them).
import { describe, expect, it } from "vitest";
import { renderAgentConfig } from "../../src/agent/config.js";
import { detectPlatform } from "../../src/platform/detect.js";

describe("renderAgentConfig: step attribution", () => {
  it("writes the platform's markers in priority order and the identity as one JSON line", () => {
    const d = detectPlatform({
      BUILDKITE: "true",
      GITHUB_ACTIONS: "true",
      GITHUB_REPOSITORY: "a/b",
    });
    const text = renderAgentConfig({
      mode: "observe",
      stepMarkers: d.step.markers,
      ci: { ...d.identity, alsoMatched: d.alsoMatched },
    });
    const lines = text.trimEnd().split("\n");
    expect(lines.filter((l) => l.startsWith("step-marker "))).toEqual([
      "step-marker GITHUB_ACTION",
    ]);
    const ci = lines.find((l) => l.startsWith("ci-identity "));
    expect(JSON.parse(ci?.slice("ci-identity ".length) ?? "")).toEqual({
      platform: "github",
      serverUrl: "https://github.com",
      repository: "a/b",
      alsoMatched: ["buildkite"],
    });
  });

  it("no markers: no step-marker line (the agent then uses DPNDNCY_STEP)", () => {
    expect(renderAgentConfig({ mode: "observe", stepMarkers: [] })).not.toContain("step-marker");
  });

  it("refuses a marker that is not a variable name, and more than eight", () => {
    expect(() => renderAgentConfig({ mode: "observe", stepMarkers: ["A B"] })).toThrow(
      /not an environment/,
    );
    expect(() =>
      renderAgentConfig({
        mode: "observe",
        stepMarkers: Array.from({ length: 9 }, (_, i) => `M${i}`),
      }),
    ).toThrow(/at most 8/);
  });

  it("keeps the identity on one line and within the agent's bound", () => {
    const text = renderAgentConfig({
      mode: "observe",
      ci: { platform: "gitlab", jobName: `a\nb#c${"x".repeat(5000)}` },
    });
    const ci = text.split("\n").find((l) => l.startsWith("ci-identity ")) ?? "";
    expect(Buffer.byteLength(ci) - "ci-identity ".length).toBeLessThanOrEqual(3071);
    expect((JSON.parse(ci.slice(12)) as { jobName: string }).jobName.startsWith("a\nb#c")).toBe(
      true,
    );
  });

  it("learn mode runs the agent as observe (the agent has no learn mode; the policy comes from the log)", () => {
    const conf = renderAgentConfig({ mode: "learn" });
    expect(conf).toContain("\nmode observe\n");
    expect(conf).not.toContain("mode learn");
    expect(renderAgentConfig({ mode: "enforce" })).toContain("\nmode enforce\n");
  });
});
