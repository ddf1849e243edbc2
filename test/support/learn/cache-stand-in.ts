// A local stand-in of the GitHub Actions cache service v2, enough for @actions/cache 6:
// Twirp JSON at ACTIONS_RESULTS_URL (CreateCacheEntry, FinalizeCacheEntryUpload,
// GetCacheEntryDownloadURL: exact key first, then the newest entry whose key starts with a
// restore key, same version only) and a blob store on signed URLs (the Azure SDK's
// single-shot PUT for upload; a plain GET for download, since the host is not Azure).
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

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

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function startCacheStandIn(): Promise<CacheStandIn> {
  const token = "stand-in-runtime-token";
  const entries: Entry[] = [];
  const blobs = new Map<string, Buffer>();
  const calls: string[] = [];
  let order = 0;
  let base = "";
  const server: Server = createServer(async (req, res) => {
    const data = await body(req);
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
        json(200, { ok: true, signed_upload_url: `${base}/${blob}?sig=upload` });
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
          signed_download_url: `${base}/${hit.blob}?sig=download`,
          matched_key: hit.key,
        });
        return;
      }
      json(404, { code: "bad_route", msg: method });
      return;
    }
    const blob = url.pathname.slice(1);
    if (req.method === "PUT" && url.searchParams.get("sig") === "upload") {
      calls.push("PUT blob");
      blobs.set(blob, data);
      res.writeHead(201, {
        etag: `"0x${blobs.size}"`,
        "last-modified": new Date().toUTCString(),
        "x-ms-request-server-encrypted": "true",
      });
      res.end();
      return;
    }
    if (req.method === "GET" && url.searchParams.get("sig") === "download" && blobs.has(blob)) {
      calls.push("GET blob");
      const b = blobs.get(blob) ?? Buffer.alloc(0);
      res.writeHead(200, { "content-length": String(b.length) });
      res.end(b);
      return;
    }
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
