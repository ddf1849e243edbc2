// What every subcommand gets: output sinks and the environment, so tests can drive the CLI
// in-process and read what it printed.
import { type ParseArgsConfig, parseArgs } from "node:util";

export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
}

export type Subcommand = (argv: string[], io: Io) => Promise<number>;

/** Exit codes shared by all subcommands (documented in src/cli/README.md). */
export const EXIT = {
  OK: 0,
  /** Verification failed (or the trace is not clean under --require-clean). */
  FAILED: 1,
  /** Bad command line, or a signing configuration we refuse (e.g. public Rekor for a private repo). */
  USAGE: 2,
  /** An input could not be read or parsed: log, bundle file, key, trusted root. */
  INPUT: 3,
  /** A Sigstore service or the identity token failed. */
  SERVICE: 4,
} as const;

export class UsageError extends Error {
  override name = "UsageError";
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** node:util parseArgs in strict mode; its errors (unknown option, missing value) become UsageError. */
export function parse<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function one(positionals: string[], what: string): string {
  if (positionals.length !== 1 || positionals[0] === undefined) {
    throw new UsageError(
      positionals.length === 0
        ? `missing ${what}`
        : `expected one ${what}, got ${positionals.length}`,
    );
  }
  return positionals[0];
}
