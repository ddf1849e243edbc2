// dpndncy summarize FILE [--json]
import { summarizeFile } from "../trace/summarize.js";
import { ciIdentity } from "./ci.js";
import { formatSummary } from "./format.js";
import { EXIT, type Io, one, parse, UsageError } from "./io.js";

export const SUMMARIZE_USAGE = `usage: dpndncy summarize FILE [--json]
  Summarize an agent NDJSON log: per-kind counts, egress destinations with the names they
  resolved from, sensitive file opens, DNS names, execs, and whether the log is intact.
  --json   print the predicate (https://dpndncy.io/agent/runtime-trace/v1) instead
exit: 0 summarized, 2 usage error, 3 log unreadable`;

export async function summarize(argv: string[], io: Io): Promise<number> {
  let file: string;
  let json: boolean;
  try {
    const { values, positionals } = parse(argv, {
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      io.out(`${SUMMARIZE_USAGE}\n`);
      return EXIT.OK;
    }
    file = one(positionals, "log FILE");
    json = values.json ?? false;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`dpndncy summarize: ${e.message}\n${SUMMARIZE_USAGE}\n`);
    return EXIT.USAGE;
  }
  let predicate: Awaited<ReturnType<typeof summarizeFile>>;
  try {
    predicate = await summarizeFile(file, { ci: ciIdentity(io.env) });
  } catch (e) {
    io.err(`dpndncy summarize: cannot read ${file}: ${(e as Error).message}\n`);
    return EXIT.INPUT;
  }
  io.out(json ? `${JSON.stringify(predicate, null, 2)}\n` : formatSummary(predicate));
  return EXIT.OK;
}
