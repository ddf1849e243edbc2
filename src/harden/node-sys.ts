// The real HardenSys: node:fs and child processes. Runs as root (the CLI checks).
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import type { HardenSys } from "./index.js";

export const nodeSys: HardenSys = {
  readFile(path) {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  },
  writeFile(path, data, mode) {
    const tmp = join(dirname(path), `.dpndncy-${process.pid}.tmp`);
    writeFileSync(tmp, data, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  },
  remove(path) {
    rmSync(path, { force: true });
  },
  stat(path) {
    try {
      const s = statSync(path);
      return { uid: s.uid, gid: s.gid, mode: s.mode & 0o7777, isDirectory: s.isDirectory() };
    } catch {
      return undefined;
    }
  },
  chown: (path, uid, gid) => chownSync(path, uid, gid),
  chmod: (path, mode) => chmodSync(path, mode),
  mkdir(path, mode) {
    mkdirSync(path, { recursive: true, mode });
  },
  copyFile(src, dst, mode) {
    const tmp = `${dst}.${process.pid}.tmp`;
    copyFileSync(src, tmp);
    chmodSync(tmp, mode);
    renameSync(tmp, dst);
  },
  run(argv) {
    const [cmd, ...args] = argv;
    const r = spawnSync(cmd as string, args, {
      encoding: "utf8",
      env: { ...process.env, LC_ALL: "C" },
    });
    return {
      code: r.status ?? 1,
      stdout: r.stdout ?? "",
      stderr: r.stderr ?? String(r.error ?? ""),
    };
  },
  uidOf(user) {
    const r = spawnSync("id", ["-u", user], { encoding: "utf8" });
    return r.status === 0 ? Number(r.stdout.trim()) : undefined;
  },
};
