/**
 * `harden`: take the job's root away from later steps, the way users expect from peers
 * (`disable-sudo`, `disable-sudo-and-containers`). Every file edit goes through HardenSys, so
 * the logic is unit-tested with an in-memory system and the real one is a thin wrapper
 * (./node-sys.ts).
 *
 * sudo: a sudoers drop-in, last in sudoers.d order (sudo applies the LAST matching rule), that
 * denies the user everything, followed by the exact commands still allowed without a password
 * (the agent's `stop`, from a root-owned copy of the binary, with a root-owned state dir).
 * Validated with `visudo -c` before it takes effect, and checked with `sudo -l -U`.
 *
 * containers: the Docker socket is given to root:root 0660 and the user is removed from the
 * `docker` group (for new logins). Whoever can talk to dockerd is root (`docker run -v /:/h`).
 *
 * Everything done is written to a restore record; `restoreHarden` undoes it (tests; a
 * self-hosted runner that is reused). GitHub-hosted VMs are discarded after the job.
 */

export type HardenLevel = "none" | "sudo" | "sudo-and-containers";
export const HARDEN_LEVELS: readonly HardenLevel[] = ["none", "sudo", "sudo-and-containers"];

export interface StatInfo {
  uid: number;
  gid: number;
  mode: number;
  isDirectory: boolean;
}

export interface RunOut {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HardenSys {
  readFile(path: string): string | undefined;
  /** Writes via a temporary file in the same directory and a rename. */
  writeFile(path: string, data: string, mode: number): void;
  remove(path: string): void;
  stat(path: string): StatInfo | undefined;
  chown(path: string, uid: number, gid: number): void;
  chmod(path: string, mode: number): void;
  mkdir(path: string, mode: number): void;
  copyFile(src: string, dst: string, mode: number): void;
  run(argv: string[]): RunOut;
  /** uid of a user name, undefined when there is no such user. */
  uidOf(user: string): number | undefined;
}

export interface HardenOptions {
  user: string;
  level: Exclude<HardenLevel, "none">;
  /** Commands (exact argv, absolute program path) the user may still run with sudo, no password. */
  allowCommands?: string[][];
  sudoersDir?: string;
  dockerSocket?: string;
  /** Where the restore record goes. */
  recordPath?: string;
}

export interface HardenRecord {
  user: string;
  level: Exclude<HardenLevel, "none">;
  dropIn: string;
  socket?: { path: string; uid: number; gid: number; mode: number };
  removedFromGroup?: string;
}

export interface HardenResult {
  record: HardenRecord;
  recordPath: string;
  /** `sudo -l -U user /usr/bin/true` refused after the change. */
  sudoDenied: boolean;
  allowed: string[];
  notes: string[];
}

export const DROP_IN_NAME = "zzzz-dpndncy-harden"; // no '.': sudo skips such names in sudoers.d
const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/i;
/** An argument sudoers takes literally: no blanks and none of its special characters. */
const SAFE_ARG = /^[A-Za-z0-9_./@+-]+$/;

export class HardenError extends Error {
  override name = "HardenError";
}

export function sudoersDropIn(user: string, allow: string[][]): string {
  if (!USER_RE.test(user)) throw new HardenError(`"${user}" is not a user name`);
  const lines = [
    "# written by dpndncy harden: later steps of this job lose sudo.",
    "# sudo applies the last matching rule; this file sorts last in sudoers.d.",
    `${user} ALL=(ALL:ALL) !ALL`,
  ];
  for (const argv of allow) {
    const [cmd, ...args] = argv;
    if (!cmd?.startsWith("/") || !SAFE_ARG.test(cmd))
      throw new HardenError(`allowed command "${cmd}" must be an absolute path without blanks`);
    for (const a of args)
      if (!SAFE_ARG.test(a))
        throw new HardenError(
          `allowed command argument "${a}" has characters sudoers would interpret`,
        );
    lines.push(`${user} ALL=(root) NOPASSWD: ${[cmd, ...args].join(" ")}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Every directory from / to path is owned by root and writable by nobody else. */
export function rootOnlyPath(sys: HardenSys, path: string): string | undefined {
  const parts = path.split("/").filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = `/${parts.slice(0, i).join("/")}`;
    const st = sys.stat(p);
    if (!st) return `${p} does not exist`;
    if (st.uid !== 0) return `${p} is not owned by root`;
    // a sticky ancestor (/tmp) is fine: others cannot rename what root owns in it
    const stickyAncestor = st.isDirectory && (st.mode & 0o1000) !== 0 && i < parts.length;
    if (st.mode & 0o022 && !stickyAncestor) return `${p} is writable by group or others`;
  }
  return undefined;
}

/**
 * Copies the agent to a root-owned directory so the one sudo rule left for it cannot be
 * pointed at a binary the user controls. Returns the installed path.
 */
export function installAgent(sys: HardenSys, src: string, dir: string): string {
  sys.mkdir(dir, 0o755);
  sys.chown(dir, 0, 0);
  sys.chmod(dir, 0o755);
  const why = rootOnlyPath(sys, dir);
  if (why) throw new HardenError(`cannot install the agent in ${dir}: ${why}`);
  const dst = `${dir}/dpndncy-agent`;
  sys.copyFile(src, dst, 0o755);
  sys.chown(dst, 0, 0);
  sys.chmod(dst, 0o755);
  return dst;
}

function groupsOf(sys: HardenSys, user: string): string[] {
  const r = sys.run(["id", "-nG", user]);
  return r.code === 0 ? r.stdout.trim().split(/\s+/) : [];
}

export function harden(sys: HardenSys, o: HardenOptions): HardenResult {
  const uid = sys.uidOf(o.user);
  if (uid === undefined) throw new HardenError(`no user "${o.user}"`);
  if (uid === 0) throw new HardenError(`refusing to harden root ("${o.user}" has uid 0)`);
  const dir = o.sudoersDir ?? "/etc/sudoers.d";
  const dropIn = `${dir}/${DROP_IN_NAME}`;
  const recordPath = o.recordPath ?? `/var/lib/dpndncy/harden-${o.user}.json`;
  const allow = o.allowCommands ?? [];
  const notes: string[] = [];
  const content = sudoersDropIn(o.user, allow);

  if (!sys.stat(dir)) {
    sys.mkdir(dir, 0o750);
    notes.push(`created ${dir}`);
  }
  // validate the new file on its own before it can take effect
  const tmp = `${dir}/.${DROP_IN_NAME}.tmp`;
  sys.writeFile(tmp, content, 0o440);
  const check = sys.run(["visudo", "-c", "-q", "-f", tmp]);
  if (check.code !== 0) {
    sys.remove(tmp);
    throw new HardenError(`visudo rejected the drop-in: ${(check.stderr || check.stdout).trim()}`);
  }
  sys.remove(tmp);
  const record: HardenRecord = { user: o.user, level: o.level, dropIn };
  sys.mkdir(recordPath.slice(0, recordPath.lastIndexOf("/")) || "/", 0o700);
  sys.writeFile(recordPath, `${JSON.stringify(record)}\n`, 0o600);
  sys.writeFile(dropIn, content, 0o440);
  const all = sys.run(["visudo", "-c", "-q"]);
  if (all.code !== 0) {
    sys.remove(dropIn);
    throw new HardenError(
      `visudo -c failed with the drop-in: ${(all.stderr || all.stdout).trim()}`,
    );
  }

  if (o.level === "sudo-and-containers") {
    const sock = o.dockerSocket ?? "/var/run/docker.sock";
    const st = sys.stat(sock);
    if (st) {
      record.socket = { path: sock, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
      sys.writeFile(recordPath, `${JSON.stringify(record)}\n`, 0o600);
      sys.chown(sock, 0, 0);
      sys.chmod(sock, 0o660);
    } else {
      notes.push(`no Docker socket at ${sock}`);
    }
    if (groupsOf(sys, o.user).includes("docker")) {
      record.removedFromGroup = "docker";
      sys.writeFile(recordPath, `${JSON.stringify(record)}\n`, 0o600);
      const g = sys.run(["gpasswd", "-d", o.user, "docker"]);
      if (g.code !== 0) notes.push(`gpasswd -d ${o.user} docker: ${g.stderr.trim()}`);
    }
  }

  // the effect, as sudo itself sees it
  const probe = sys.run(["sudo", "-n", "-l", "-U", o.user, "/usr/bin/true"]);
  const sudoDenied = probe.code !== 0;
  const allowed = allow
    .filter((argv) => sys.run(["sudo", "-n", "-l", "-U", o.user, ...argv]).code === 0)
    .map((a) => a.join(" "));
  if (!sudoDenied)
    notes.push(`sudo still allows ${o.user} to run /usr/bin/true: ${probe.stdout.trim()}`);
  return { record, recordPath, sudoDenied, allowed, notes };
}

export function restoreHarden(sys: HardenSys, recordPath: string): HardenRecord {
  const text = sys.readFile(recordPath);
  if (text === undefined) throw new HardenError(`no restore record at ${recordPath}`);
  const r = JSON.parse(text) as HardenRecord;
  if (!r.dropIn.endsWith(`/${DROP_IN_NAME}`))
    throw new HardenError(`restore record names an unexpected file ${r.dropIn}`);
  sys.remove(r.dropIn);
  if (r.socket && sys.stat(r.socket.path)) {
    sys.chown(r.socket.path, r.socket.uid, r.socket.gid);
    sys.chmod(r.socket.path, r.socket.mode);
  }
  if (r.removedFromGroup) sys.run(["gpasswd", "-a", r.user, r.removedFromGroup]);
  sys.remove(recordPath);
  return r;
}
