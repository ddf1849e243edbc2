// dpndncy policy check FILE: validate a policy (YAML or JSON, schema/policy.v1.json) the way
// `start --policy` will load it. Errors name FILE:LINE:COLUMN; --print shows the agent
// directives enforce mode would get (agent-c/features/enforce_policy.c).
import { endpointDirective } from "../agent/config.js";
import { EndpointError } from "../policy/endpoint.js";
import { loadPolicy, PolicyError } from "../policy/load.js";
import { EXIT, type Io, parse, UsageError } from "./io.js";

export const POLICY_USAGE = `usage: dpndncy policy check FILE [--print]
  Validate a policy file; print its version (SHA-256 of the canonical form).
  --print   also print the egress directives the agent gets in enforce mode
  Every problem is reported, one per line, as FILE:LINE:COLUMN: reason.
exit: 0 valid, 1 invalid, 2 usage error, 3 FILE cannot be read`;

const OPTIONS = { print: { type: "boolean" }, help: { type: "boolean", short: "h" } } as const;

export async function policy(argv: string[], io: Io): Promise<number> {
  let file: string;
  let print = false;
  try {
    const p = parse(argv, OPTIONS);
    if (p.values.help) {
      io.out(`${POLICY_USAGE}\n`);
      return EXIT.OK;
    }
    const [sub, f, ...extra] = p.positionals;
    if (sub !== "check")
      throw new UsageError(sub ? `unknown subcommand "${sub}"` : "missing subcommand");
    if (!f) throw new UsageError("missing FILE");
    if (extra.length) throw new UsageError(`unexpected argument ${extra[0]}`);
    file = f;
    print = p.values.print === true;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`dpndncy policy: ${e.message}\n${POLICY_USAGE}\n`);
    return EXIT.USAGE;
  }
  try {
    const loaded = await loadPolicy(file);
    io.out(
      `${file}: valid (policy version ${loaded.sha256}, ${loaded.allow.length} egress allow entries)\n`,
    );
    if (print) {
      for (const e of loaded.allow) io.out(`${endpointDirective(e)}\n`);
      for (const r of loaded.policy.dns?.resolvers ?? []) io.out(`dns-resolver ${r}\n`);
      if (loaded.policy.egress?.["allow-metadata"]) io.out("allow-metadata\n");
    }
    return EXIT.OK;
  } catch (e) {
    if (e instanceof PolicyError || e instanceof EndpointError) {
      io.err(`${e.message}\n`);
      return e instanceof PolicyError && e.unreadable ? EXIT.INPUT : EXIT.FAILED;
    }
    throw e;
  }
}
