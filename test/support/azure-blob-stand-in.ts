// The Azure Blob side of the Actions results service stand-ins (cache v2, artifacts v4): the
// services hand out signed (SAS) URLs and the clients talk to them with @azure/storage-blob.
// What that SDK sends for a block blob: a single-shot `PUT` (x-ms-blob-type: BlockBlob;
// uploadData/uploadFile below the single-shot limit, as @actions/cache does), or
// `PUT ?comp=block&blockid=<base64>` per block and `PUT ?comp=blocklist` with the XML block
// list (uploadStream, as @actions/artifact does, for every size); downloads are a plain `GET`
// (both clients use their own HTTP client when the host is not *.blob.core.windows.net).
// Errors answer in Azure's XML shape with x-ms-error-code.
import { createHmac, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export interface BlobStore {
  /** Committed blobs by path (`account/container/name`). */
  blobs: Map<string, Buffer>;
  /** Uncommitted blocks per blob path, by block id. */
  staged: Map<string, Map<string, Buffer>>;
  /** A SAS-style URL on `base` for blob: `sp=w`/`cw` (create/write) or `sp=r` (read). */
  signedUrl(base: string, blob: string, perm: "r" | "w" | "cw"): string;
  /** Answers an Azure Blob request; false when `url` is not one (no signature). */
  handle(req: IncomingMessage, res: ServerResponse, url: URL, data: Buffer): boolean;
}

/** `calls` receives "PUT blob", "PUT block", "PUT blocklist" and "GET blob". */
export function createBlobStore(calls: string[]): BlobStore {
  const key = randomBytes(16);
  const blobs = new Map<string, Buffer>();
  const staged = new Map<string, Map<string, Buffer>>();
  const committedBlocks = new Map<string, Map<string, Buffer>>();
  let etag = 0;
  const sign = (blob: string, perm: string) =>
    createHmac("sha256", key).update(`${perm}\n${blob}`).digest("base64");

  const error = (res: ServerResponse, status: number, code: string, message: string) => {
    res.writeHead(status, { "content-type": "application/xml", "x-ms-error-code": code });
    res.end(
      `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
    );
  };
  const created = (res: ServerResponse, extra: Record<string, string> = {}) => {
    res.writeHead(201, {
      etag: `"0x${(++etag).toString(16).toUpperCase()}"`,
      "last-modified": new Date().toUTCString(),
      "x-ms-request-server-encrypted": "true",
      "x-ms-version": "2025-01-05",
      ...extra,
    });
    res.end();
  };

  return {
    blobs,
    staged,
    signedUrl(base, blob, perm) {
      const q = new URLSearchParams({ sv: "2025-01-05", sr: "b", sp: perm, sig: sign(blob, perm) });
      return `${base}/${blob}?${q}`;
    },
    handle(req, res, url, data) {
      const sig = url.searchParams.get("sig");
      if (sig === null) return false;
      const blob = decodeURIComponent(url.pathname.slice(1));
      const perm = url.searchParams.get("sp") ?? "";
      if (sig !== sign(blob, perm)) {
        error(res, 403, "AuthenticationFailed", "Signature did not match");
        return true;
      }
      const comp = url.searchParams.get("comp");
      if (req.method === "PUT" && perm.includes("w")) {
        if (comp === "block") {
          calls.push("PUT block");
          const id = url.searchParams.get("blockid") ?? "";
          if (!/^[A-Za-z0-9+/]+=*$/.test(id) || Buffer.from(id, "base64").length > 64) {
            error(res, 400, "InvalidQueryParameterValue", "blockid must be base64, ≤ 64 bytes");
            return true;
          }
          const blocks = staged.get(blob) ?? new Map<string, Buffer>();
          const other = blocks.keys().next().value;
          if (other !== undefined && other.length !== id.length) {
            error(res, 400, "InvalidBlobOrBlock", "block ids of one blob must have equal length");
            return true;
          }
          blocks.set(id, data);
          staged.set(blob, blocks);
          created(res, { "x-ms-content-crc64": "AAAAAAAAAAA=" });
          return true;
        }
        if (comp === "blocklist") {
          calls.push("PUT blocklist");
          const wanted = [
            ...data.toString("utf8").matchAll(/<(Latest|Committed|Uncommitted)>([^<]*)<\/\1>/g),
          ];
          const uncommitted = staged.get(blob) ?? new Map<string, Buffer>();
          const committed = committedBlocks.get(blob) ?? new Map<string, Buffer>();
          const parts = new Map<string, Buffer>();
          for (const [, list, id = ""] of wanted) {
            const b =
              list === "Committed"
                ? committed.get(id)
                : list === "Uncommitted"
                  ? uncommitted.get(id)
                  : (uncommitted.get(id) ?? committed.get(id));
            if (!b) {
              error(res, 400, "InvalidBlockList", `block ${id} is not in the ${list} list`);
              return true;
            }
            parts.set(id, b);
          }
          blobs.set(blob, Buffer.concat([...parts.values()]));
          committedBlocks.set(blob, parts);
          staged.delete(blob);
          created(res);
          return true;
        }
        if (comp === null) {
          calls.push("PUT blob");
          if (req.headers["x-ms-blob-type"] !== "BlockBlob") {
            error(res, 400, "MissingRequiredHeader", "x-ms-blob-type: BlockBlob is required");
            return true;
          }
          blobs.set(blob, data);
          committedBlocks.delete(blob);
          staged.delete(blob);
          created(res);
          return true;
        }
      }
      if (req.method === "GET" && perm.includes("r") && comp === null) {
        const b = blobs.get(blob);
        if (!b) {
          error(res, 404, "BlobNotFound", "The specified blob does not exist.");
          return true;
        }
        calls.push("GET blob");
        res.writeHead(200, {
          "content-length": String(b.length),
          "x-ms-blob-type": "BlockBlob",
          "accept-ranges": "bytes",
        });
        res.end(b);
        return true;
      }
      error(res, 403, "AuthorizationPermissionMismatch", `${req.method} not allowed by sp=${perm}`);
      return true;
    },
  };
}
