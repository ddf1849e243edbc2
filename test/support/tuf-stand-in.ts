// A local TUF repository on 127.0.0.1 serving one target, trusted_root.json, the way the
// Sigstore instances publish theirs (DESIGN §7: the real client, @sigstore/tuf over tuf-js,
// against a server speaking the real protocol). The metadata is built and signed here with a
// fresh Ed25519 key per repository: root (v1, written to a file for --tuf-root), timestamp,
// snapshot and targets, consistent_snapshot false, so the client fetches 2.root.json (404: no
// rotation), timestamp.json, snapshot.json, targets.json and targets/trusted_root.json.
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { canonicalize } from "@tufjs/canonical-json";

export interface TufStandIn {
  url: string;
  /** The repository's root.json (version 1), to pass as --tuf-root. */
  rootPath: string;
  /** Every path requested, in order. */
  requests: string[];
  /** Serve other bytes for the target than the signed targets.json describes. */
  tamperTarget(): void;
  close(): Promise<void>;
}

export async function startTufStandIn(trustedRoot: unknown, dir: string): Promise<TufStandIn> {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const keyid = createHash("sha256")
    .update(publicKey.export({ format: "der", type: "spki" }))
    .digest("hex");
  const expires = new Date(Date.now() + 7 * 86400_000).toISOString().replace(/\.\d+Z$/, "Z");
  const signed = (s: Record<string, unknown>) => ({
    signatures: [
      { keyid, sig: sign(null, Buffer.from(canonicalize(s)), privateKey).toString("hex") },
    ],
    signed: s,
  });
  const common = { spec_version: "1.0.31", version: 1, expires };
  const role = { keyids: [keyid], threshold: 1 };
  const root = signed({
    _type: "root",
    ...common,
    consistent_snapshot: false,
    keys: {
      [keyid]: {
        keytype: "ed25519",
        scheme: "ed25519",
        keyval: { public: publicKey.export({ format: "pem", type: "spki" }).toString() },
      },
    },
    roles: { root: role, targets: role, snapshot: role, timestamp: role },
  });
  const target = Buffer.from(JSON.stringify(trustedRoot));
  const targets = signed({
    _type: "targets",
    ...common,
    targets: {
      "trusted_root.json": {
        length: target.length,
        hashes: { sha256: createHash("sha256").update(target).digest("hex") },
      },
    },
  });
  const snapshot = signed({
    _type: "snapshot",
    ...common,
    meta: { "targets.json": { version: 1 } },
  });
  const timestamp = signed({
    _type: "timestamp",
    ...common,
    meta: { "snapshot.json": { version: 1 } },
  });
  const files: Record<string, Buffer> = {
    "/1.root.json": Buffer.from(JSON.stringify(root)),
    "/timestamp.json": Buffer.from(JSON.stringify(timestamp)),
    "/snapshot.json": Buffer.from(JSON.stringify(snapshot)),
    "/targets.json": Buffer.from(JSON.stringify(targets)),
    "/targets/trusted_root.json": target,
  };
  const rootPath = join(dir, "tuf-root.json");
  writeFileSync(rootPath, JSON.stringify(root));

  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    requests.push(path);
    const body = files[path];
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    rootPath,
    requests,
    tamperTarget() {
      const t = JSON.parse(target.toString()) as { tlogs?: unknown[] };
      files["/targets/trusted_root.json"] = Buffer.from(JSON.stringify({ ...t, tlogs: [] }));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
