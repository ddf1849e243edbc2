// Where `verify` gets the trusted root (the Sigstore instance's CA, CT log, Rekor and TSA keys)
// from: a file the user names (offline, nothing fetched), or the instance's TUF repository
// through @sigstore/tuf, which checks the signed metadata chain from a root it already trusts
// (embedded for the public-good instance, or a root.json the user names) and keeps it in a
// cache directory, so a later run updates incrementally and `--offline` can use it without
// the network.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { DEFAULT_MIRROR_URL, getTrustedRoot } from "@sigstore/tuf";
import { InputError, ServiceError } from "./errors.js";

export const PUBLIC_GOOD_TUF = DEFAULT_MIRROR_URL;

export interface TrustedRootSource {
  /** A trusted_root.json: nothing is fetched. */
  file?: string;
  /** TUF repository (default: the public-good instance's). */
  mirror?: string;
  /** Initial root.json for a repository whose root is not embedded in @sigstore/tuf. */
  tufRoot?: string;
  /** Cache directory (default $XDG_CACHE_HOME/dpndncy/tuf, else ~/.cache/dpndncy/tuf). */
  cacheDir?: string;
  /** Use the cached metadata while it has not expired, without asking the repository. */
  offline?: boolean;
  /** Per request, milliseconds. */
  timeoutMs?: number;
}

export function defaultTufCache(env: Readonly<Record<string, string | undefined>>): string {
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"), "dpndncy", "tuf");
}

/** The trusted root as JSON (protobuf-specs form) and where it came from, for the output. */
export async function loadTrustedRoot(
  s: TrustedRootSource,
  env: Readonly<Record<string, string | undefined>>,
): Promise<{ json: unknown; from: string }> {
  if (s.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(s.file, "utf8");
    } catch (e) {
      throw new InputError(
        "UNREADABLE",
        `cannot read trusted root ${s.file}: ${(e as Error).message}`,
      );
    }
    try {
      return { json: JSON.parse(text), from: s.file };
    } catch (e) {
      throw new InputError(
        "TRUSTED_ROOT_INVALID",
        `${s.file} is not JSON: ${(e as Error).message}`,
      );
    }
  }
  const mirror = (s.mirror ?? PUBLIC_GOOD_TUF).replace(/\/+$/, "");
  const cachePath = s.cacheDir ?? defaultTufCache(env);
  if (s.tufRoot !== undefined) {
    try {
      readFileSync(s.tufRoot);
    } catch (e) {
      throw new InputError(
        "UNREADABLE",
        `cannot read TUF root ${s.tufRoot}: ${(e as Error).message}`,
      );
    }
  }
  try {
    const root = await getTrustedRoot({
      mirrorURL: mirror,
      cachePath,
      ...(s.tufRoot !== undefined ? { rootPath: s.tufRoot } : {}),
      forceCache: s.offline ?? false,
      timeout: s.timeoutMs ?? 10_000,
      retry: { retries: 1 },
    });
    // @sigstore/tuf hands back the parsed message; verify takes the JSON form, as from a file
    return { json: TrustedRoot.toJSON(root), from: `${mirror} (TUF, cache ${cachePath})` };
  } catch (e) {
    throw tufFailure(e, mirror, { ...s, cacheDir: cachePath });
  }
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ERR_SOCKET_TIMEOUT",
  "FETCH_ERROR",
]);

function chain(e: unknown): Error[] {
  const out: Error[] = [];
  for (
    let c: unknown = e;
    c instanceof Error && out.length < 8;
    c = (c as { cause?: unknown }).cause
  ) {
    out.push(c);
  }
  return out;
}

/** Network trouble (exit 4, with the URL and the cause) or metadata we must not trust (exit 3). */
function tufFailure(e: unknown, mirror: string, s: TrustedRootSource): Error {
  const errors = chain(e);
  const text = errors
    .map((x) => x.message)
    .filter((m, i, a) => a.indexOf(m) === i)
    .join(": ");
  const http = errors.find((x) => x.name === "DownloadHTTPError") as
    | (Error & { statusCode?: number })
    | undefined;
  const network = errors.some(
    (x) =>
      NETWORK_CODES.has(String((x as { code?: unknown }).code)) ||
      x.name === "FetchError" ||
      /request to .* failed|timeout|ECONNREFUSED|ENOTFOUND/i.test(x.message),
  );
  if ((http || network) && s.offline) {
    return new ServiceError(
      "TRUSTED_ROOT_UNAVAILABLE",
      `--offline: nothing unexpired is cached for ${mirror} in ${s.cacheDir ?? "the cache"}, and the repository cannot be reached: ${text}. Verify once online first, or pass --trusted-root FILE`,
      { cause: e },
    );
  }
  if (http || network) {
    return new ServiceError(
      "TRUSTED_ROOT_UNAVAILABLE",
      `cannot fetch the trusted root from the TUF repository ${mirror}${http?.statusCode ? ` (HTTP ${http.statusCode})` : ""}: ${text}. Offline: pass --trusted-root FILE, or --offline to use what an earlier run cached`,
      { cause: e },
    );
  }
  if (/No root\.json found for mirror/.test(text)) {
    return new InputError(
      "TRUSTED_ROOT_INVALID",
      `no root of trust is known for the TUF repository ${mirror}: pass its initial root.json with --tuf-root FILE (or the trusted root itself with --trusted-root)`,
      { cause: e },
    );
  }
  return new InputError(
    "TRUSTED_ROOT_INVALID",
    `the TUF repository ${mirror} gave metadata that does not verify${s.offline ? " (or nothing is cached yet for --offline)" : ""}: ${text}`,
    { cause: e },
  );
}
