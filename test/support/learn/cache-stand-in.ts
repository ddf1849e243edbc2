// A local stand-in of the GitHub Actions cache service v2, enough for @actions/cache 6:
// Twirp JSON at ACTIONS_RESULTS_URL (CreateCacheEntry, FinalizeCacheEntryUpload,
// GetCacheEntryDownloadURL: exact key first, then the newest entry whose key starts with a
// restore key, same version only) and a blob store on signed URLs (../azure-blob-stand-in.ts:
// the Azure SDK's single-shot PUT for upload; a plain GET for download).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createBlobStore, readBody } from "../azure-blob-stand-in.js";

interface Entry {
  key: string;
  version: string;
  blob: string;
  finalized: boolean;
  order: number;
}

export interface CacheStandIn {
  url: string;
  token: string;
  entries: Entry[];
  blobs: Map<string, Buffer>;
  calls: string[];
  close(): Promise<void>;
}

const SERVICE = "/twirp/github.actions.results.api.v1.CacheService/";

export async function startCacheStandIn(): Promise<CacheStandIn> {
  const token = "stand-in-runtime-token";
  const entries: Entry[] = [];
  const calls: string[] = [];
  const store = createBlobStore(calls);
  const blobs = store.blobs;
  let order = 0;
  let base = "";
  const server: Server = createServer(async (req, res) => {
    const data = await readBody(req);
    const url = new URL(req.url ?? "/", base);
    const json = (status: number, o: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(o));
    };
    if (req.method === "POST" && url.pathname.startsWith(SERVICE)) {
      const method = url.pathname.slice(SERVICE.length);
      calls.push(method);
      if (req.headers.authorization !== `Bearer ${token}`) {
        json(401, { code: "unauthenticated", msg: "bad token" });
        return;
      }
      const r = JSON.parse(data.toString("utf8")) as Record<string, unknown>;
      if (method === "CreateCacheEntry") {
        if (entries.some((e) => e.key === r.key && e.version === r.version)) {
          json(200, { ok: false, message: "cache entry already exists" });
          return;
        }
        const blob = `devstoreaccount1/caches/${++order}`;
        entries.push({
          key: String(r.key),
          version: String(r.version),
          blob,
          finalized: false,
          order,
        });
        json(200, { ok: true, signed_upload_url: store.signedUrl(base, blob, "w") });
        return;
      }
      if (method === "FinalizeCacheEntryUpload") {
        const e = entries.find((x) => x.key === r.key && x.version === r.version && !x.finalized);
        if (!e || !blobs.has(e.blob)) {
          json(200, { ok: false, message: "nothing uploaded" });
          return;
        }
        e.finalized = true;
        json(200, { ok: true, entry_id: String(e.order) });
        return;
      }
      if (method === "GetCacheEntryDownloadURL") {
        const live = entries.filter((e) => e.finalized && e.version === r.version);
        const restoreKeys = (r.restore_keys as string[] | undefined) ?? [];
        const exact = live.find((e) => e.key === r.key);
        const prefixed = restoreKeys
          .map((k) => live.filter((e) => e.key.startsWith(k)).sort((a, b) => b.order - a.order)[0])
          .find((e) => e !== undefined);
        const hit = exact ?? prefixed;
        if (!hit) {
          json(200, { ok: false });
          return;
        }
        json(200, {
          ok: true,
          signed_download_url: store.signedUrl(base, hit.blob, "r"),
          matched_key: hit.key,
        });
        return;
      }
      json(404, { code: "bad_route", msg: method });
      return;
    }
    if (store.handle(req, res, url, data)) return;
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${base}/`,
    token,
    entries,
    blobs,
    calls,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
