/**
 * The policy directory, compiled for the agent (docs/daemon.md "Per-job policy"): every
 * `*.yml`/`*.yaml` under policyDir is a dpndncy policy (src/policy/load.ts) and becomes the same
 * relative path with `.conf`, holding only its `allow-host` / `allow-suffix` / `allow-cidr`
 * lines (src/agent/config.ts endpointDirective). Everything else a policy can say is host-wide
 * in daemon mode (daemon.yml), so it is reported and ignored, never half-applied.
 *
 * The compiled tree is replaced atomically: each generation is written to a fresh directory,
 * then the `policies` symlink is renamed over (rename(2) is atomic), so the agent never sees a
 * half-written tree. A directory with one bad file is refused as a whole: the previous tree
 * stays in force and the error names FILE:LINE:COLUMN.
 */
import { randomBytes } from "node:crypto";
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, join, relative, sep } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { endpointDirective } from "../agent/config.js";
import { type LoadedPolicy, PolicyError, parsePolicy } from "../policy/load.js";

export interface CompiledPolicy {
  /** Source, relative to policyDir (e.g. `acme/app/build.yml`). */
  source: string;
  /** Compiled file, relative to the compiled dir (e.g. `acme/app/build.conf`). */
  conf: string;
  /** The file's content. */
  text: string;
  sha256: string;
  allow: number;
}

export interface Compiled {
  policies: CompiledPolicy[];
  /** FILE:LINE:COLUMN: what was ignored, and files that can never apply. */
  warnings: string[];
}

const HOST_WIDE: Record<string, string> = {
  mode: "mode",
  "egress.allow-metadata": "allowMetadata",
  "dns.resolvers": "dnsResolvers",
  files: "(no daemon equivalent yet)",
};

/** Policy slots of the agent (agent-c/features/enforce_state.h MAX_SLOTS), default.conf included. */
const MAX_POLICIES = 256;

function isPolicyFile(name: string): boolean {
  return !name.startsWith(".") && /\.ya?ml$/.test(name);
}

/** Every policy file under dir, relative, sorted (the order does not matter; it makes output stable). */
function walk(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    if (e.name.startsWith(".")) continue; // editors' temporaries, .git
    const r = rel ? join(rel, e.name) : e.name;
    const st = e.isSymbolicLink() ? statSync(join(dir, r)) : e;
    if (st.isDirectory()) out.push(...walk(dir, r));
    else if (st.isFile() && isPolicyFile(e.name)) out.push(r);
  }
  return out.sort();
}

/** Keys set in a policy that daemon mode takes from daemon.yml instead, with their position. */
function hostWideKeys(text: string, file: string, p: LoadedPolicy): string[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const out: string[] = [];
  const present: [string, unknown][] = [
    ["mode", p.policy.mode],
    ["egress.allow-metadata", p.policy.egress?.["allow-metadata"]],
    ["dns.resolvers", p.policy.dns?.resolvers],
    ["files", p.policy.files],
  ];
  for (const [key, v] of present) {
    if (v === undefined) continue;
    const node = doc.getIn(key.split("."), true) as
      | { range?: [number, number, number] }
      | undefined;
    const pos = node?.range ? lines.linePos(node.range[0]) : undefined;
    out.push(
      `${pos ? `${file}:${pos.line}:${pos.col}` : file}: ${key} is host-wide in daemon mode (daemon.yml ${HOST_WIDE[key]}); ignored here`,
    );
  }
  return out;
}

/**
 * Loads and compiles every policy under policyDir, in memory. Throws PolicyError (naming
 * FILE:LINE:COLUMN) on the first file that does not load; nothing is written.
 */
export async function compilePolicies(policyDir: string): Promise<Compiled> {
  let files: string[];
  try {
    files = walk(policyDir);
  } catch (e) {
    throw new PolicyError(
      `${policyDir}: cannot read the policy directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const policies: CompiledPolicy[] = [];
  const warnings: string[] = [];
  const seen = new Map<string, string>();
  for (const rel of files) {
    const path = join(policyDir, rel);
    const conf = rel.replace(/\.ya?ml$/, ".conf");
    const twin = seen.get(conf);
    if (twin !== undefined)
      throw new PolicyError(`${path}: ${join(policyDir, twin)} is the same policy; keep one`);
    seen.set(conf, rel);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (e) {
      throw new PolicyError(
        `${path}: cannot read policy: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    const loaded = parsePolicy(text, path);
    warnings.push(...hostWideKeys(text, path, loaded));
    if (dirname(rel) === "." && conf !== "default.conf") {
      warnings.push(
        `${path}: never used: the layout is default.yml, <project>/default.yml, <project>/<job name>.yml`,
      );
    }
    const lines = [
      `# generated by dpndncy daemon from ${rel} (policy sha256 ${loaded.sha256})`,
      ...loaded.allow.map(endpointDirective),
    ];
    policies.push({
      source: rel,
      conf: conf.split(sep).join("/"),
      text: `${lines.join("\n")}\n`,
      sha256: loaded.sha256,
      allow: loaded.allow.length,
    });
  }
  if (policies.length > MAX_POLICIES) {
    throw new PolicyError(
      `${policyDir}: ${policies.length} policies; the agent holds at most ${MAX_POLICIES} (agent-c/features/enforce_state.h)`,
    );
  }
  if (!seen.has("default.conf")) {
    warnings.push(
      `${join(policyDir, "default.yml")}: missing: in enforce mode a job with no policy of its own may reach only loopback and the DNS resolvers`,
    );
  }
  return { policies, warnings };
}

/** Writes a compiled set into a new directory (not yet in force). */
export function writeTree(dir: string, c: Compiled): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const p of c.policies) {
    const path = join(dir, p.conf);
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeFileSync(path, p.text, { mode: 0o644 });
  }
}

/**
 * The compiled policy directory the agent reads: `<stateDir>/policies`, a symlink to the
 * generation in force (`<stateDir>/policies.<id>`).
 */
export class PolicyTree {
  readonly link: string;

  constructor(readonly stateDir: string) {
    this.link = join(stateDir, "policies");
  }

  /** The generation in force, or undefined when none was ever installed. */
  current(): string | undefined {
    try {
      return join(this.stateDir, readlinkSync(this.link));
    } catch {
      return undefined;
    }
  }

  /** Puts a compiled set in force in one rename; old generations are removed afterwards. */
  install(c: Compiled): string {
    mkdirSync(this.stateDir, { recursive: true, mode: 0o755 });
    const id = `${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
    const gen = `policies.${id}`;
    writeTree(join(this.stateDir, gen), c);
    const tmpLink = join(this.stateDir, `.policies.${id}.link`);
    symlinkSync(gen, tmpLink);
    // a real directory left where the link goes (an older layout, a hand edit) cannot be
    // renamed over: move it aside first
    try {
      if (lstatSync(this.link).isDirectory())
        renameSync(this.link, join(this.stateDir, `policies.old-${id}`));
    } catch {
      // no link yet
    }
    const previous = this.current();
    renameSync(tmpLink, this.link);
    // the previous generation stays until the next install: the agent may still be reading it
    // (a reload it has not finished when the next one comes)
    this.prune([gen, ...(previous ? [basename(previous)] : [])]);
    return join(this.stateDir, gen);
  }

  private prune(keep: string[]): void {
    for (const name of readdirSync(this.stateDir)) {
      if (name.startsWith("policies.") && !keep.includes(name)) {
        rmSync(join(this.stateDir, name), { recursive: true, force: true });
      }
    }
  }
}

/** Files of a compiled tree, relative (for tests and `--check`). */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const go = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) go(p);
      else out.push(relative(dir, p).split(sep).join("/"));
    }
  };
  go(dir);
  return out.sort();
}
