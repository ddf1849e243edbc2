// A local stand-in of the GitHub Actions artifact service (v4 artifacts, results API), enough
// for @actions/artifact 6: Twirp JSON at ACTIONS_RESULTS_URL
// (github.actions.results.api.v1.ArtifactService: CreateArtifact, FinalizeArtifact,
// ListArtifacts, GetSignedArtifactURL) authorised by ACTIONS_RUNTIME_TOKEN, a JWT whose `scp`
// claim carries `Actions.Results:<runId>:<jobId>` (the client reads the ids from it and the
// service checks they match); the zip goes to a signed Azure Blob URL (../azure-blob-stand-in.ts:
// block upload + block list, what BlockBlobClient.uploadStream sends). Finalize checks the size
// and the sha256 the client reports against the committed blob, as the service does. Other Twirp
// services on the same URL (the cache, which post consults for a learn baseline) get bad_route.
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type BlobStore, createBlobStore, readBody } from "../azure-blob-stand-in.js";

export interface StoredArtifact {
  id: number;
  runId: string;
  jobId: string;
  name: string;
  mimeType: string | undefined;
  expiresAt: string | undefined;
  blob: string;
  finalized: boolean;
  size: number;
  hash: string | undefined;
  createdAt: string;
}

export interface ArtifactStandIn {
  /** ACTIONS_RESULTS_URL */
  url: string;
  /** ACTIONS_RUNTIME_TOKEN */
  token: string;
  runId: string;
  jobId: string;
  artifacts: StoredArtifact[];
  store: BlobStore;
  /** ArtifactService methods and blob operations in arrival order. */
  calls: string[];
  /** Calls to other Twirp services on the same results URL (the cache), answered bad_route. */
  otherCalls: string[];
  /** When set, every ArtifactService call answers with this HTTP status (an outage). */
  failWith: number | undefined;
  /** The uploaded bytes of a finalized artifact. */
  content(name: string): Buffer | undefined;
  close(): Promise<void>;
}

const SERVICE = "/twirp/github.actions.results.api.v1.ArtifactService/";

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");

/** A runtime token shaped like the runner's (the client only decodes it, never verifies). */
export function runtimeToken(runId: string, jobId: string): string {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    scp: `Actions.ExampleScope Actions.Results:${runId}:${jobId}`,
    iss: "vstoken.actions.githubusercontent.com",
    aud: "vso:stand-in",
    nbf: now,
    exp: now + 3600,
  };
  return `${b64url({ typ: "JWT", alg: "RS256" })}.${b64url(claims)}.c3RhbmQtaW4`;
}

export async function startArtifactStandIn(
  runId = "ce7f54c7-61c7-4aae-887f-30da475f5f1a",
  jobId = "ca395085-040a-526b-2ce8-bdc85f692774",
): Promise<ArtifactStandIn> {
  const token = runtimeToken(runId, jobId);
  const artifacts: StoredArtifact[] = [];
  const calls: string[] = [];
  const otherCalls: string[] = [];
  const store = createBlobStore(calls);
  let base = "";
  const server: Server = createServer(async (req, res) => {
    const data = await readBody(req);
    const url = new URL(req.url ?? "/", base);
    const json = (status: number, o: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(o));
    };
    const twirpError = (status: number, code: string, msg: string) => json(status, { code, msg });
    if (
      req.method === "POST" &&
      url.pathname.startsWith("/twirp/") &&
      !url.pathname.startsWith(SERVICE)
    ) {
      otherCalls.push(url.pathname.slice("/twirp/".length));
      twirpError(404, "bad_route", `no service for ${url.pathname}`);
      return;
    }
    if (req.method === "POST" && url.pathname.startsWith(SERVICE)) {
      const method = url.pathname.slice(SERVICE.length);
      calls.push(method);
      if (self.failWith !== undefined) {
        twirpError(self.failWith, "internal", "stand-in outage");
        return;
      }
      if (req.headers.authorization !== `Bearer ${token}`) {
        twirpError(401, "unauthenticated", "bad runtime token");
        return;
      }
      if (!String(req.headers["content-type"]).startsWith("application/json")) {
        twirpError(415, "bad_route", "stand-in speaks Twirp JSON only");
        return;
      }
      const r = JSON.parse(data.toString("utf8")) as Record<string, unknown>;
      if (r.workflow_run_backend_id !== runId || r.workflow_job_run_backend_id !== jobId) {
        twirpError(403, "permission_denied", "backend ids do not match the runtime token");
        return;
      }
      const name = typeof r.name === "string" ? r.name : "";
      const live = artifacts.filter((a) => a.runId === runId);
      if (method === "CreateArtifact") {
        if (!name || typeof r.version !== "number" || r.version < 4) {
          twirpError(400, "invalid_argument", "name and version >= 4 are required");
          return;
        }
        if (live.some((a) => a.name === name && a.finalized)) {
          twirpError(409, "already_exists", `an artifact named ${name} already exists`);
          return;
        }
        const id = artifacts.length + 1;
        const blob = `actionsresults/${runId}/${jobId}/${id}/${encodeURIComponent(name)}.zip`;
        artifacts.push({
          id,
          runId,
          jobId,
          name,
          mimeType: typeof r.mime_type === "string" ? r.mime_type : undefined,
          expiresAt: typeof r.expires_at === "string" ? r.expires_at : undefined,
          blob,
          finalized: false,
          size: 0,
          hash: undefined,
          createdAt: new Date().toISOString(),
        });
        json(200, { ok: true, signed_upload_url: store.signedUrl(base, blob, "cw") });
        return;
      }
      if (method === "FinalizeArtifact") {
        const a = live.filter((x) => x.name === name && !x.finalized).at(-1);
        const bytes = a && store.blobs.get(a.blob);
        if (!a || !bytes) {
          twirpError(404, "not_found", `no upload for ${name}`);
          return;
        }
        if (String(r.size) !== String(bytes.length)) {
          twirpError(400, "invalid_argument", `size ${r.size} != uploaded ${bytes.length}`);
          return;
        }
        const hash = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
        if (r.hash !== undefined && r.hash !== hash) {
          twirpError(400, "invalid_argument", `hash ${r.hash} != uploaded ${hash}`);
          return;
        }
        a.finalized = true;
        a.size = bytes.length;
        a.hash = hash;
        json(200, { ok: true, artifact_id: String(a.id) });
        return;
      }
      if (method === "ListArtifacts") {
        const found = live.filter(
          (a) =>
            a.finalized &&
            (r.name_filter === undefined || a.name === r.name_filter) &&
            (r.id_filter === undefined || String(a.id) === String(r.id_filter)),
        );
        json(200, {
          artifacts: found.map((a) => ({
            workflow_run_backend_id: a.runId,
            workflow_job_run_backend_id: a.jobId,
            database_id: String(a.id),
            name: a.name,
            size: String(a.size),
            created_at: a.createdAt,
            digest: a.hash,
          })),
        });
        return;
      }
      if (method === "GetSignedArtifactURL") {
        const a = live.find((x) => x.name === name && x.finalized);
        if (!a) {
          twirpError(404, "not_found", `no artifact named ${name}`);
          return;
        }
        json(200, { signed_url: store.signedUrl(base, a.blob, "r") });
        return;
      }
      twirpError(404, "bad_route", `no method ${method}`);
      return;
    }
    if (store.handle(req, res, url, data)) return;
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const self: ArtifactStandIn = {
    url: `${base}/`,
    token,
    runId,
    jobId,
    artifacts,
    store,
    calls,
    otherCalls,
    failWith: undefined,
    content: (name) => {
      const a = artifacts.find((x) => x.name === name && x.finalized);
      return a && store.blobs.get(a.blob);
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return self;
}
