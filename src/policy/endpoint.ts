/**
 * One allowed egress endpoint as users write it: `host`, `*.domain`, `host:port`, an IP
 * (v4 or v6, `[v6]:port`), or a CIDR. Parsed once at the edge so every later stage
 * (agent config, learn mode, the summary) works on the typed form.
 */
import { isIP } from "node:net";

export type Endpoint =
  | { kind: "host"; host: string; wildcard: boolean; port?: number }
  | { kind: "ip"; addr: string; family: 4 | 6; prefix: number; port?: number };

export class EndpointError extends Error {
  constructor(
    readonly input: string,
    readonly where: string,
    reason: string,
  ) {
    super(`${where}: invalid endpoint "${input}": ${reason}`);
    this.name = "EndpointError";
  }
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function parsePort(s: string, input: string, where: string): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) {
    throw new EndpointError(input, where, `port "${s}" is not 1-65535`);
  }
  return Number(s);
}

export function parseEndpoint(raw: string, where = "allowed-endpoints"): Endpoint {
  const input = raw.trim();
  if (input === "") throw new EndpointError(raw, where, "empty");
  let rest = input;
  let port: number | undefined;

  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracket) {
    rest = bracket[1] ?? "";
    if (bracket[2] !== undefined) port = parsePort(bracket[2], input, where);
  } else if ((rest.match(/:/g) ?? []).length === 1) {
    const i = rest.lastIndexOf(":");
    port = parsePort(rest.slice(i + 1), input, where);
    rest = rest.slice(0, i);
  }

  const [addrPart, prefixPart, extra] = rest.split("/");
  if (extra !== undefined) throw new EndpointError(input, where, "more than one '/'");
  const family = isIP(addrPart ?? "");
  if (family === 4 || family === 6) {
    const max = family === 4 ? 32 : 128;
    let prefix = max;
    if (prefixPart !== undefined) {
      if (!/^\d{1,3}$/.test(prefixPart) || Number(prefixPart) > max) {
        throw new EndpointError(input, where, `prefix length must be 0-${max}`);
      }
      prefix = Number(prefixPart);
    }
    return {
      kind: "ip",
      addr: (addrPart ?? "").toLowerCase(),
      family,
      prefix,
      ...(port ? { port } : {}),
    };
  }
  if (prefixPart !== undefined) throw new EndpointError(input, where, "a CIDR needs an IP address");

  let host = rest.toLowerCase().replace(/\.$/, "");
  const wildcard = host.startsWith("*.");
  if (wildcard) host = host.slice(2);
  if (host.includes("*")) {
    throw new EndpointError(input, where, "'*' is only allowed as a leading '*.' label");
  }
  const labels = host.split(".");
  if (
    host.length > 253 ||
    labels.length < (wildcard ? 2 : 1) ||
    !labels.every((l) => LABEL.test(l))
  ) {
    throw new EndpointError(input, where, "not a valid host name, IP address or CIDR");
  }
  return { kind: "host", host, wildcard, ...(port ? { port } : {}) };
}

/** Multi-line input: one endpoint per line or comma/space separated; `#` starts a comment. */
export function parseEndpointList(text: string, where = "allowed-endpoints"): Endpoint[] {
  return text
    .split("\n")
    .map((line, i) => ({ line: line.replace(/#.*$/, ""), n: i + 1 }))
    .flatMap(({ line, n }) =>
      line
        .split(/[\s,]+/)
        .filter((t) => t !== "")
        .map((t) => parseEndpoint(t, `${where} line ${n}`)),
    );
}
