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
    readonly reason: string,
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

/** The address's bytes (4 or 16); an IPv6 address may end in a dotted IPv4 tail. */
function bytesOf(addr: string, family: 4 | 6): number[] {
  if (family === 4) return addr.split(".").map(Number);
  let text = addr;
  const tail = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(addr);
  if (tail) {
    const q = (tail[2] ?? "").split(".").map(Number);
    text = `${tail[1]}${(((q[0] ?? 0) << 8) | (q[1] ?? 0)).toString(16)}:${(((q[2] ?? 0) << 8) | (q[3] ?? 0)).toString(16)}`;
  }
  const [head = "", rest] = text.split("::");
  const words = (x: string) => (x === "" ? [] : x.split(":"));
  const h = words(head);
  const t = rest === undefined ? [] : words(rest);
  return [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t].flatMap((w) => {
    const n = Number.parseInt(w, 16);
    return [n >> 8, n & 0xff];
  });
}

/** Canonical text of an address (RFC 5952 style for IPv6: longest zero run as ::). */
function textOf(bytes: number[]): string {
  if (bytes.length === 4) return bytes.join(".");
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2)
    g.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  let best = -1;
  let len = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === "0") j++;
    if (j - i > len) [best, len] = [i, j - i];
  }
  return best < 0 ? g.join(":") : `${g.slice(0, best).join(":")}::${g.slice(best + len).join(":")}`;
}

/**
 * What parses as an address but would not do what it says: IPv4-mapped IPv6 (the agent judges
 * ::ffff:a.b.c.d as the IPv4 address, so a v6 entry for it never matches), a /0 (allows
 * everything: enforce would block nothing), and host bits under a prefix (10.1.2.3/8 would
 * allow all of 10.0.0.0/8, which its writer may not have meant).
 */
function checkAddress(
  addr: string,
  family: 4 | 6,
  prefix: number,
  hasPrefix: boolean,
  input: string,
  where: string,
): void {
  const bytes = bytesOf(addr, family);
  if (
    family === 6 &&
    bytes.slice(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff &&
    bytes[11] === 0xff
  ) {
    throw new EndpointError(
      input,
      where,
      `an IPv4-mapped IPv6 address: connections to it are judged as IPv4, so write ${bytes.slice(12).join(".")}${hasPrefix ? `/${Math.max(0, prefix - 96)}` : ""}`,
    );
  }
  if (!hasPrefix) return;
  if (prefix === 0) {
    throw new EndpointError(
      input,
      where,
      `allows every ${family === 4 ? "IPv4" : "IPv6"} address: enforce mode would block nothing (use mode: observe to record without blocking)`,
    );
  }
  const net = bytes.map((b, i) => {
    const keep = Math.min(8, Math.max(0, prefix - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
  if (net.some((b, i) => b !== bytes[i])) {
    throw new EndpointError(
      input,
      where,
      `host bits set: a /${prefix} starts at ${textOf(net)}, so this allows all of ${textOf(net)}/${prefix}; write that, or ${textOf(bytes)} alone for one address`,
    );
  }
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
    const addr = (addrPart ?? "").toLowerCase();
    checkAddress(addr, family, prefix, prefixPart !== undefined, input, where);
    return {
      kind: "ip",
      addr,
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
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? "")) {
    // all-digit last label: no such top-level domain, so it was meant as an address
    throw new EndpointError(
      input,
      where,
      /(^|\.)0\d/.test(host)
        ? `an IPv4 address with a leading zero, which tools read differently (010 is 8 to inet_aton, 10 to others): write ${labels.length === 4 && labels.every((l) => /^\d+$/.test(l) && Number(l) <= 255) ? labels.map(Number).join(".") : "each number without leading zeros"}`
        : "neither an IPv4 address (four numbers 0-255) nor a host name (a top-level domain is never all digits)",
    );
  }
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
