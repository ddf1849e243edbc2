// dpndncy harden --user USER [--containers] [--install-agent PATH --state-dir DIR] ...
// dpndncy harden --restore [--record FILE]
import { HardenError, harden, installAgent, restoreHarden } from "../harden/index.js";
import { nodeSys } from "../harden/node-sys.js";
import { EXIT, type Io, parse, UsageError } from "./io.js";

export const HARDEN_USAGE = `usage: dpndncy harden --user USER [options]     (as root)
       dpndncy harden --restore [--user USER | --record FILE]
  Takes sudo away from USER for the rest of the job: a sudoers drop-in (validated with visudo)
  that denies USER everything except the commands listed below, checked with sudo -l.
  --containers              also take the Docker socket away (root:root 0660) and remove USER
                            from the docker group: docker, container actions and service
                            containers stop working for USER
  --install-agent PATH      copy the agent to --install-dir (root-owned) and keep exactly
                            "AGENT stop --state-dir DIR" allowed, so the job can still stop it
  --state-dir DIR           the agent's state dir (must be root-owned, e.g. under /run)
  --install-dir DIR         default /usr/local/lib/dpndncy
  --allow-command "ARGV"    another exact command (absolute path, blank-separated) to keep
  --sudoers-dir DIR         default /etc/sudoers.d
  --docker-socket PATH      default /var/run/docker.sock
  --record FILE             restore record (default /var/lib/dpndncy/harden-USER.json)
  --restore                 undo what the record says was done
prints JSON: {"user","sudo_denied","allowed":[...],"agent"?,"record","notes":[...]}
exit: 0 done (and sudo verified denied), 1 failed or sudo still allowed, 2 usage`;

const OPTIONS = {
  user: { type: "string" },
  containers: { type: "boolean" },
  "install-agent": { type: "string" },
  "state-dir": { type: "string" },
  "install-dir": { type: "string" },
  "allow-command": { type: "string", multiple: true },
  "sudoers-dir": { type: "string" },
  "docker-socket": { type: "string" },
  record: { type: "string" },
  restore: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

export async function hardenCmd(argv: string[], io: Io): Promise<number> {
  let v: ReturnType<typeof parse<typeof OPTIONS>>["values"];
  try {
    v = parse(argv, OPTIONS).values;
    if (v.help) {
      io.out(`${HARDEN_USAGE}\n`);
      return EXIT.OK;
    }
    if (!v.restore && !v.user) throw new UsageError("--user USER is required");
    if ((v["install-agent"] === undefined) !== (v["state-dir"] === undefined))
      throw new UsageError("--install-agent and --state-dir go together");
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`dpndncy harden: ${e.message}\n${HARDEN_USAGE}\n`);
    return EXIT.USAGE;
  }
  if (process.getuid?.() !== 0) {
    io.err("dpndncy harden: must run as root\n");
    return EXIT.FAILED;
  }
  const record = v.record ?? (v.user ? `/var/lib/dpndncy/harden-${v.user}.json` : undefined);
  try {
    if (v.restore) {
      if (!record) throw new HardenError("--restore needs --user or --record");
      const r = restoreHarden(nodeSys, record);
      io.out(`${JSON.stringify({ restored: true, user: r.user, record })}\n`);
      return EXIT.OK;
    }
    const allow = (v["allow-command"] ?? []).map((c) => c.trim().split(/\s+/));
    let agent: string | undefined;
    if (v["install-agent"] !== undefined && v["state-dir"] !== undefined) {
      agent = installAgent(
        nodeSys,
        v["install-agent"],
        v["install-dir"] ?? "/usr/local/lib/dpndncy",
      );
      allow.unshift([agent, "stop", "--state-dir", v["state-dir"]]);
    }
    const r = harden(nodeSys, {
      user: v.user as string,
      level: v.containers ? "sudo-and-containers" : "sudo",
      allowCommands: allow,
      ...(v["sudoers-dir"] ? { sudoersDir: v["sudoers-dir"] } : {}),
      ...(v["docker-socket"] ? { dockerSocket: v["docker-socket"] } : {}),
      ...(record ? { recordPath: record } : {}),
    });
    io.out(
      `${JSON.stringify({ user: r.record.user, sudo_denied: r.sudoDenied, allowed: r.allowed, ...(agent ? { agent } : {}), record: r.recordPath, docker: { socket: r.record.socket ?? null, removed_from_group: r.record.removedFromGroup ?? null }, notes: r.notes })}\n`,
    );
    if (!r.sudoDenied) {
      io.err(`dpndncy harden: sudo is still allowed for ${r.record.user}: ${r.notes.join("; ")}\n`);
      return EXIT.FAILED;
    }
    return EXIT.OK;
  } catch (e) {
    if (!(e instanceof HardenError) && !(e instanceof Error)) throw e;
    io.err(`dpndncy harden: ${(e as Error).message}\n`);
    return EXIT.FAILED;
  }
}
