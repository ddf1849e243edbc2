// deploy/systemd: the unit passes `systemd-analyze verify` with no warning at all, and says what
// the design needs (capabilities, directories, stop behaviour); the example daemon.yml parses.
//
// How the unit is verified, honestly: the unit file is copied byte for byte (not rewritten)
// into a temporary root directory and verified with `systemd-analyze verify --root=DIR`, so
// every path the unit names is looked up inside DIR. DIR gets what verify looks at on a real
// host: the executables of the Exec*= lines (stub scripts: verify checks that argv[0] exists and
// is executable, it does not run it) and systemd's own units (sysinit.target, the .mount units
// the unit is ordered after), copied from this machine's systemd package. Nothing else is
// faked. Works without systemd running as PID 1 (containers, CI).
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseDaemonConfig } from "../../src/daemon/config.js";
import { validateDaemonYml } from "../support/daemon-schema.js";

const ROOT = join(import.meta.dirname, "..", "..");
const UNIT = join(ROOT, "deploy", "systemd", "dpndncy-agent.service");
const DAEMON_YML = join(ROOT, "deploy", "systemd", "daemon.yml");
const UNIT_NAME = "dpndncy-agent.service";

function findSystemdAnalyze(): string {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/bin", "/bin"])) {
    const p = join(dir, "systemd-analyze");
    if (dir && existsSync(p)) return p;
  }
  throw new Error(
    "systemd-analyze not found: run scripts/prereqs.sh as root (it installs the Debian package `systemd`, which provides it)",
  );
}

/** The unit's key=value pairs per section, every value of a repeated key in order. */
function parseUnit(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1] as string;
      continue;
    }
    const eq = line.indexOf("=");
    if (eq < 0) throw new Error(`not key=value: ${line}`);
    const key = `${section}.${line.slice(0, eq).trim()}`;
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return out;
}

const unitText = readFileSync(UNIT, "utf8");
const unit = parseUnit(unitText);
const one = (key: string): string => {
  const v = unit.get(key) ?? [];
  if (v.length !== 1) throw new Error(`${key}: expected exactly one value, got ${v.length}`);
  return v[0] as string;
};

/** A root directory for `verify --root`: the unit as is, stub executables, systemd's units. */
function makeRoot(unitBody: string): string {
  const dir = mkdtempSync(join(tmpdir(), "dpndncy-systemd-"));
  mkdirSync(join(dir, "etc/systemd/system"), { recursive: true });
  writeFileSync(join(dir, "etc/systemd/system", UNIT_NAME), unitBody);
  // systemd's own units (targets, sys-kernel-tracing.mount) from the package on this machine
  for (const src of ["/usr/lib/systemd/system", "/lib/systemd/system"]) {
    if (existsSync(src)) {
      cpSync(src, join(dir, "usr/lib/systemd/system"), { recursive: true, verbatimSymlinks: true });
      break;
    }
  }
  for (const [key, values] of unit) {
    if (!/^Service\.Exec/.test(key)) continue;
    for (const v of values) {
      const argv0 = (v.replace(/^[-@:+!|]+/, "").split(/\s+/)[0] ?? "").trim();
      if (!argv0.startsWith("/")) throw new Error(`${key}: argv[0] must be absolute: ${v}`);
      const stub = join(dir, argv0);
      mkdirSync(dirname(stub), { recursive: true });
      writeFileSync(stub, "#!/bin/sh\nexit 0\n");
      chmodSync(stub, 0o755);
    }
  }
  return dir;
}

function verify(dir: string): { status: number | null; output: string } {
  const r = spawnSync(
    findSystemdAnalyze(),
    ["verify", "--man=no", `--root=${dir}`, UNIT_NAME],
    // no colours, no pager, messages in English, warnings shown
    {
      encoding: "utf8",
      env: {
        ...process.env,
        SYSTEMD_COLORS: "0",
        SYSTEMD_PAGER: "",
        LC_ALL: "C",
        SYSTEMD_LOG_LEVEL: "info",
      },
    },
  );
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

describe("deploy/systemd/dpndncy-agent.service", () => {
  it("systemd-analyze verify prints nothing and exits 0 (any warning fails)", () => {
    const dir = makeRoot(unitText);
    roots.push(dir);
    const r = verify(dir);
    expect(r.output).toBe("");
    expect(r.status).toBe(0);
  });

  it("the check is real: an unknown key and a missing executable are reported", () => {
    const dir = makeRoot(unitText.replace("Restart=on-failure", "Restart=on-failure\nRestartz=1"));
    roots.push(dir);
    expect(verify(dir).output).toMatch(/Unknown key 'Restartz'/);
    rmSync(join(dir, "usr/bin/node"));
    expect(verify(dir).output).toMatch(/\/usr\/bin\/node is not executable/);
  });

  it("systemd-analyze works here (version line)", () => {
    const v = execFileSync(findSystemdAnalyze(), ["--version"], { encoding: "utf8" });
    expect(v).toMatch(/^systemd \d+/);
  });

  it("runs the supervisor with /etc/dpndncy/daemon.yml and reloads with SIGHUP", () => {
    expect(one("Service.ExecStart")).toMatch(
      /^\/usr\/bin\/node \/usr\/local\/lib\/dpndncy\/cli\.js daemon --config \/etc\/dpndncy\/daemon\.yml$/,
    );
    expect(one("Service.ExecReload")).toBe("/bin/kill -HUP $MAINPID");
  });

  it("has exactly the capabilities the agent needs, each explained, and no CAP_SYS_ADMIN", () => {
    const want = [
      "CAP_BPF",
      "CAP_DAC_READ_SEARCH",
      "CAP_NET_ADMIN",
      "CAP_PERFMON",
      "CAP_SYS_PTRACE",
    ];
    const caps = (k: string) => one(k).split(/\s+/).sort();
    expect(caps("Service.CapabilityBoundingSet")).toEqual(want);
    expect(caps("Service.AmbientCapabilities")).toEqual(want);
    for (const c of want) expect(unitText).toMatch(new RegExp(`^#\\s+${c}\\s+\\S`, "m"));
    expect(one("Service.NoNewPrivileges")).toBe("yes");
    expect(one("Service.LimitMEMLOCK")).toBe("infinity");
  });

  it("is ordered after, and wants, the mounts it cannot make itself without CAP_SYS_ADMIN", () => {
    // Without these the unit starts on a host where bpffs or tracefs is not mounted yet and the
    // agent, lacking CAP_SYS_ADMIN, cannot mount them (issue: 'Operation not permitted').
    const list = (k: string) => one(k).split(/\s+/);
    for (const mountUnit of ["sys-fs-bpf.mount", "sys-kernel-tracing.mount"]) {
      expect(list("Unit.After")).toContain(mountUnit);
      expect(list("Unit.Wants")).toContain(mountUnit);
    }
  });

  it("sandboxes the file system but leaves writable what the agent writes", () => {
    expect(one("Service.ProtectSystem")).toBe("strict");
    expect(one("Service.ProtectHome")).toBe("read-only");
    expect(one("Service.PrivateTmp")).toBe("yes");
    expect(one("Service.StateDirectory")).toBe("dpndncy");
    expect(one("Service.RuntimeDirectory")).toBe("dpndncy");
    expect(one("Service.ReadWritePaths")).toBe("/sys/fs/bpf");
    expect(one("Service.ProtectKernelTunables")).toBe("yes");
    expect(one("Service.ProtectControlGroups")).toBe("yes");
    expect(one("Service.SystemCallArchitectures")).toBe("native");
    // what cannot apply is said, not silently left out
    for (const k of ["ProtectProc", "MemoryDenyWriteExecute", "PrivateNetwork", "PrivateUsers"]) {
      expect(unit.has(`Service.${k}`)).toBe(false);
      expect(unitText).toMatch(new RegExp(`^# ${k}[ =/:]`, "m"));
    }
    // bpf(2) and perf_event_open(2) are outside @system-service; nothing else is added
    expect(one("Service.SystemCallFilter")).toBe("@system-service bpf perf_event_open");
  });

  it("restarts on failure and gives the supervisor time to sign on stop", () => {
    expect(one("Service.Restart")).toBe("on-failure");
    expect(one("Service.RestartSec")).toMatch(/^\d+s$/);
    expect(one("Service.KillSignal")).toBe("SIGTERM");
    expect(one("Service.KillMode")).toBe("mixed");
    expect(Number.parseInt(one("Service.TimeoutStopSec"), 10)).toBeGreaterThanOrEqual(60);
    expect(one("Install.WantedBy")).toBe("multi-user.target");
  });
});

describe("deploy/systemd/daemon.yml", () => {
  const cfg = parse(readFileSync(DAEMON_YML, "utf8")) as Record<string, unknown>;

  it("puts job logs in the unit's StateDirectory and names the installed agent", () => {
    expect(cfg.jobsDir).toBe(`/var/lib/${one("Service.StateDirectory")}/jobs`);
    expect(cfg.agent).toBe("/usr/local/lib/dpndncy/dpndncy-agent");
    expect(cfg.mode).toBe("observe");
    expect(cfg.policyDir).toBe("/etc/dpndncy/policies");
    // the compiled policies live in the unit's RuntimeDirectory
    expect(cfg.stateDir).toBe(`/run/${one("Service.RuntimeDirectory")}`);
    expect((cfg.metrics as { listen: string }).listen).toBe("127.0.0.1:9464");
    expect(cfg.signing).toEqual({ key: "/etc/dpndncy/signing-key.pem" });
  });

  it("is accepted by the supervisor's own loader (src/daemon/config.ts)", () => {
    const c = parseDaemonConfig(readFileSync(DAEMON_YML, "utf8"), "/etc/dpndncy/daemon.yml");
    expect(c.jobsDir).toBe("/var/lib/dpndncy/jobs");
    expect(c.signing).toEqual({ kind: "key", key: "/etc/dpndncy/signing-key.pem" });
  });

  // schema/daemon.v1.json belongs to the supervisor; skipped (and reported so) until it exists
  const schemaPath = join(ROOT, "schema", "daemon.v1.json");
  it.skipIf(!existsSync(schemaPath))("is valid against schema/daemon.v1.json", () => {
    expect(validateDaemonYml(schemaPath, cfg)).toEqual([]);
  });
});
