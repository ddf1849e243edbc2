#!/usr/bin/env node
// dpndncy CLI dispatcher: `dpndncy <command> …`. Kept tiny on purpose; each command lives in
// src/cli/<command>.ts as `(argv, io) => Promise<exitCode>`. Register new commands (start,
// stop, …) in COMMANDS.
import { pathToFileURL } from "node:url";
import pkg from "../package.json" with { type: "json" };
import { attest } from "./cli/attest.js";
import { daemon } from "./cli/daemon.js";
import { hardenCmd } from "./cli/harden.js";
import { EXIT, type Io, type Subcommand } from "./cli/io.js";
import { learn } from "./cli/learn.js";
import { policy } from "./cli/policy.js";
import { start } from "./cli/start.js";
import { stop } from "./cli/stop.js";
import { summarize } from "./cli/summarize.js";
import { verify } from "./cli/verify.js";

export const COMMANDS: Record<string, { run: Subcommand; about: string }> = {
  start: { run: start, about: "start the agent for this job (any CI); returns once armed" },
  stop: { run: stop, about: "stop the agent, print and write the job summary" },
  summarize: {
    run: summarize,
    about: "summarize an agent log (text, or --json for the predicate)",
  },
  attest: { run: attest, about: "sign the summary into a Sigstore bundle (keyless or local key)" },
  verify: { run: verify, about: "verify a bundle against the log, identity or key" },
  policy: { run: policy, about: "policy check FILE: validate a policy (FILE:LINE:COLUMN errors)" },
  learn: { run: learn, about: "learn the egress policy enforce needs from logs (--baseline FILE)" },
  harden: { run: hardenCmd, about: "take sudo (and the Docker socket) away from the job's user" },
  daemon: {
    run: daemon,
    about: "one agent per host, one signed trace per job (--config daemon.yml; self-hosted fleets)",
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const rows = Object.entries(COMMANDS).map(([c, { about }]) => `  ${c.padEnd(width)}  ${about}`);
  return `usage: dpndncy <command> [options]   (dpndncy <command> --help for its options)\n${rows.join("\n")}\n  --version, --help\n`;
}

export async function main(argv: string[], io: Io): Promise<number> {
  const [first, ...rest] = argv;
  if (first === "--version" || first === "-V") {
    io.out(`dpndncy ${pkg.version}\n`);
    return EXIT.OK;
  }
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    (first === undefined ? io.err : io.out)(usage());
    return first === undefined ? EXIT.USAGE : EXIT.OK;
  }
  const command = COMMANDS[first];
  if (!command) {
    io.err(`dpndncy: unknown command ${JSON.stringify(first)}\n${usage()}`);
    return EXIT.USAGE;
  }
  return command.run(rest, io);
}

const processIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2), processIo).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(
        `dpndncy: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
      );
      process.exitCode = 70;
    },
  );
}
