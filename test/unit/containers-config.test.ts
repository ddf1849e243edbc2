// Container options from the action's inputs to the agent's config lines (docs/containers.md).
import { describe, expect, it } from "vitest";
import { InputError, parseInputs } from "../../src/action/inputs.js";
import { renderAgentConfig } from "../../src/agent/config.js";

const getter = (m: Record<string, string>) => (n: string) => m[n] ?? "";

describe("container options", () => {
  it("container-cgroups / runtime-cgroups: one path per line, comments and blanks skipped", () => {
    const i = parseInputs(
      getter({
        "container-cgroups": "/docker\n# a comment\n\nci.slice/containers\n",
        "runtime-cgroups": "system.slice/docker.service",
        "container-slices": "system.slice",
      }),
    );
    expect(i.containerSlices).toEqual(["system.slice"]);
    expect(i.containerCgroups).toEqual(["/docker", "ci.slice/containers"]);
    expect(i.runtimeCgroups).toEqual(["system.slice/docker.service"]);
  });

  it("a root, a '..' or a blank in a cgroup path is refused, naming the input", () => {
    for (const bad of ["/", "../etc", "/a/../b", "a b"]) {
      expect(() => parseInputs(getter({ "container-cgroups": bad }))).toThrow(InputError);
      expect(() => parseInputs(getter({ "container-cgroups": bad }))).toThrow(
        /input `container-cgroups`/,
      );
    }
  });

  it("renders container-cgroup, runtime-cgroup, runtime-socket and docker-root lines", () => {
    const text = renderAgentConfig({
      mode: "enforce",
      containerCgroups: ["/docker"],
      containerSlices: ["system.slice"],
      runtimeCgroups: ["system.slice/docker.service"],
      runtimeSockets: ["/run/docker.sock"],
      dockerRoot: "/var/lib/docker",
    });
    expect(text.split("\n").filter((l) => /^(container|runtime|docker)-/.test(l))).toEqual([
      "container-cgroup /docker",
      "container-slice system.slice",
      "runtime-cgroup system.slice/docker.service",
      "runtime-socket /run/docker.sock",
      "docker-root /var/lib/docker",
    ]);
    expect(() => renderAgentConfig({ mode: "enforce", containerCgroups: ["/"] })).toThrow(
      /not a cgroup path/,
    );
    expect(() => renderAgentConfig({ mode: "enforce", runtimeSockets: ["docker.sock"] })).toThrow(
      /absolute path/,
    );
  });
});

describe("dpndncy start --container-cgroup", () => {
  it("a bad container cgroup is bad input (exit 3) naming it, before any agent runs", async () => {
    const { start } = await import("../../src/cli/start.js");
    const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "dpndncy-unit-ct-"));
    try {
      // never executed: the config is rendered (and refused) first
      writeFileSync(join(dir, "agent"), "#!/bin/sh\nexit 99\n", { mode: 0o755 });
      let err = "";
      const code = await start(
        [
          "--dir",
          dir,
          "--agent",
          join(dir, "agent"),
          "--mode",
          "enforce",
          "--container-cgroup",
          "/",
        ],
        { out: () => undefined, err: (t) => (err += t), env: {} },
      );
      expect(code).toBe(3);
      expect(err).toMatch(/container cgroup "\/" is not a cgroup path/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
