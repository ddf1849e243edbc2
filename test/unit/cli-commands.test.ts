// The CLI driven in-process: subcommands get argv and an Io, return the exit code.
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import predicateSchema from "../../schema/predicate.v1.json" with { type: "json" };
import { generateSigningKey } from "../../src/attest/sign.js";
import type { Io } from "../../src/cli/io.js";
import { main } from "../../src/cli.js";
import {
  mintIdentityToken,
  type SigstoreStandIn,
  startSigstoreStandIn,
} from "../support/sigstore-stand-in.js";
import { startTufStandIn, type TufStandIn } from "../support/tuf-stand-in.js";

const FIXTURE = join(import.meta.dirname, "../fixtures/attack.ndjson");
const IDENTITY = "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main";
const ISSUER = "https://token.actions.githubusercontent.com";

interface Run {
  code: number;
  out: string;
  err: string;
}
async function cli(argv: string[], env: Record<string, string> = {}): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (s) => out.push(s), err: (s) => err.push(s), env };
  const code = await main(argv, io);
  return { code, out: out.join(""), err: err.join("") };
}

let dir: string;
let log: string;
let standIn: SigstoreStandIn;
let rootPath: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dpndncy-cli-"));
  log = join(dir, "trace.ndjson");
  copyFileSync(FIXTURE, log);
  standIn = await startSigstoreStandIn();
  rootPath = join(dir, "trusted_root.json");
  writeFileSync(rootPath, JSON.stringify(standIn.trustedRoot));
});
afterAll(async () => {
  await standIn.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("dpndncy (dispatcher)", () => {
  it("prints version and help, rejects unknown commands with exit 2", async () => {
    expect(await cli(["--version"])).toMatchObject({
      code: 0,
      out: expect.stringMatching(/^dpndncy \d+\.\d+\.\d+\n$/),
    });
    expect((await cli(["--help"])).out).toContain("summarize");
    expect((await cli([])).code).toBe(2);
    const r = await cli(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown command "frobnicate"');
  });
});

describe("dpndncy summarize", () => {
  it("prints a human summary by default", async () => {
    const r = await cli(["summarize", log]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("203.0.113.66:443/tcp (collector.evil-cdn.example) DENY ×3 in install");
    expect(r.out).toContain("169.254.169.254:80/tcp DENY");
    expect(r.out).toContain("/home/runner/.ssh/id_rsa  [ssh-keys]");
    expect(r.out).toContain("integrity: agent stopped cleanly");
  });

  it("prints the schema-valid predicate with --json, with the CI identity from the environment", async () => {
    const env = {
      GITHUB_ACTIONS: "true",
      GITHUB_REPOSITORY: "acme/app",
      GITHUB_RUN_ID: "9",
      GITHUB_SHA: "0123456789abcdef0123456789abcdef01234567",
    };
    const r = await cli(["summarize", "--json", log], env);
    expect(r.code).toBe(0);
    const p = JSON.parse(r.out);
    const validate = new Ajv2020().compile(predicateSchema);
    expect(validate(p), JSON.stringify(validate.errors)).toBe(true);
    expect(p.ci).toMatchObject({ platform: "github", repository: "acme/app", runId: "9" });
  });

  it("exit 2 on usage errors (strict options), 3 on an unreadable log", async () => {
    const unknown = await cli(["summarize", "--jsn", log]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("Unknown option '--jsn'");
    expect((await cli(["summarize"])).code).toBe(2);
    expect((await cli(["summarize", "a", "b"])).code).toBe(2);
    const missing = await cli(["summarize", join(dir, "nope.ndjson")]);
    expect(missing.code).toBe(3);
    expect(missing.err).toContain("cannot read");
  });
});

describe("dpndncy attest + verify with local keys", () => {
  it("--generate-key writes the bundle and the public key beside it; verify --key passes", async () => {
    const a = await cli(["attest", log, "--generate-key"]);
    expect(a.code, a.err).toBe(0);
    expect(a.out).toContain(`bundle: ${log}.sigstore.json`);
    const pub = join(dir, "trace.ndjson.pub.pem");
    expect(a.out).toContain(`public key: ${pub}`);
    expect(JSON.parse(readFileSync(`${log}.sigstore.json`, "utf8")).mediaType).toBe(
      "application/vnd.dev.sigstore.bundle.v0.3+json",
    );
    const v = await cli(["verify", `${log}.sigstore.json`, "--log", log, "--key", pub]);
    expect(v.code, v.err).toBe(0);
    expect(v.out).toContain("is the attested log");
    expect(v.out).toContain("trace: agent stopped cleanly");
  });

  it("--key signs with the given key; another key fails with KEY_MISMATCH (exit 1)", async () => {
    const { privateKeyPem, publicKeyPem } = generateSigningKey();
    writeFileSync(join(dir, "k.pem"), privateKeyPem);
    writeFileSync(join(dir, "k.pub"), publicKeyPem);
    writeFileSync(join(dir, "other.pub"), generateSigningKey().publicKeyPem);
    const out = join(dir, "k.sigstore.json");
    expect((await cli(["attest", log, "--key", join(dir, "k.pem"), "--out", out])).code).toBe(0);
    expect((await cli(["verify", out, "--log", log, "--key", join(dir, "k.pub")])).code).toBe(0);
    const bad = await cli(["verify", out, "--log", log, "--key", join(dir, "other.pub"), "--json"]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out)).toMatchObject({ ok: false, code: "KEY_MISMATCH" });
    expect(bad.err).toContain("FAILED KEY_MISMATCH");
  });

  it("--write-private-key saves the generated key with mode 0600 and never overwrites", async () => {
    const priv = join(dir, "gen.key");
    const out = join(dir, "gen.sigstore.json");
    expect(
      (await cli(["attest", log, "--generate-key", "--write-private-key", priv, "--out", out]))
        .code,
    ).toBe(0);
    expect(statSync(priv).mode & 0o777).toBe(0o600);
    expect(existsSync(join(dir, "gen.pub.pem"))).toBe(true);
    expect(
      (await cli(["attest", log, "--generate-key", "--write-private-key", priv, "--out", out]))
        .code,
    ).toBe(2);
  });

  it("one changed byte in the log: exit 1, LOG_DIGEST_MISMATCH", async () => {
    const changed = join(dir, "changed.ndjson");
    const bytes = readFileSync(log);
    bytes[200] = (bytes[200] as number) ^ 0x20;
    writeFileSync(changed, bytes);
    const r = await cli([
      "verify",
      `${log}.sigstore.json`,
      "--log",
      changed,
      "--key",
      join(dir, "trace.ndjson.pub.pem"),
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /FAILED LOG_DIGEST_MISMATCH: log SHA-256 [0-9a-f]{64} is not the attested/,
    );
  });

  it("--require-clean fails a correctly signed trace that reports tampering", async () => {
    const tampered = join(dir, "tampered.ndjson");
    writeFileSync(
      tampered,
      readFileSync(log, "utf8").replace(
        '"verdict":"deny","rule":"metadata"',
        '"verdict":"allow","rule":"metadata"',
      ),
    );
    const out = join(dir, "tampered.sigstore.json");
    expect((await cli(["attest", tampered, "--generate-key", "--out", out])).code).toBe(0);
    const pub = join(dir, "tampered.pub.pem");
    // the default: a signature over a trace that says it was tampered with is not a pass
    const byDefault = await cli(["verify", out, "--log", tampered, "--key", pub]);
    expect(byDefault.code).toBe(1);
    expect(byDefault.out).toBe("");
    expect(byDefault.err).toMatch(
      /^dpndncy verify: FAILED TRACE_TAMPERED: signature verified, but the trace is not untampered: .*LOG_SHA256_MISMATCH/,
    );
    // opting out reports it, and never as "OK"
    const lax = await cli(["verify", out, "--log", tampered, "--key", pub, "--allow-incomplete"]);
    expect(lax.code).toBe(0);
    expect(lax.out).toMatch(
      /^NOT CLEAN .*tampered\.ndjson .*LOG_SHA256_MISMATCH.*\(accepted: --allow-incomplete\)\n/,
    );
    expect(lax.out).not.toMatch(/^OK/m);
    expect(lax.out).toContain("NOT CLEAN — LOG_SHA256_MISMATCH");
    const laxJson = JSON.parse(
      (await cli(["verify", out, "--log", tampered, "--key", pub, "--allow-incomplete", "--json"]))
        .out,
    );
    expect(laxJson).toMatchObject({ ok: true, clean: false });
    const r = await cli(["verify", out, "--log", tampered, "--key", pub, "--require-clean"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("TRACE_NOT_CLEAN");
  });

  it("a truncated bundle is unreadable input: exit 3, BUNDLE_UNREADABLE", async () => {
    const whole = readFileSync(`${log}.sigstore.json`, "utf8");
    const cut = join(dir, "cut.sigstore.json");
    writeFileSync(cut, whole.slice(0, Math.floor(whole.length / 2)));
    const r = await cli(["verify", cut, "--log", log, "--key", join(dir, "trace.ndjson.pub.pem")]);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(
      /FAILED BUNDLE_UNREADABLE: .*cut\.sigstore\.json is not JSON .*truncated/,
    );
  });
});

describe("dpndncy attest --keyless + verify against the stand-in", () => {
  const token = mintIdentityToken({ iss: ISSUER, sub: IDENTITY });
  const endpoints = () => [
    "--fulcio-url",
    standIn.fulcioURL,
    "--rekor-url",
    standIn.rekorURL,
    "--tsa-url",
    standIn.tsaURL,
  ];

  it("signs keyless and verifies with identity, issuer and trusted root", async () => {
    const out = join(dir, "keyless.sigstore.json");
    const a = await cli([
      "attest",
      log,
      "--keyless",
      "--public",
      "--identity-token",
      token,
      ...endpoints(),
      "--out",
      out,
      "--standard-trace",
    ]);
    expect(a.code, a.err).toBe(0);
    expect(a.out).toContain(`signer: certificate ${IDENTITY}`);
    expect(existsSync(`${log}.runtime-trace.sigstore.json`)).toBe(true);
    const args = ["--log", log, "--trusted-root", rootPath, "--certificate-oidc-issuer", ISSUER];
    const v = await cli(["verify", out, ...args, "--certificate-identity", IDENTITY, "--json"]);
    expect(v.code, v.err).toBe(0);
    expect(JSON.parse(v.out)).toMatchObject({
      ok: true,
      signer: { identity: IDENTITY, issuer: ISSUER },
      tlogEntries: 1,
    });
    expect(v.out).toContain('"clean": true');
    const text = await cli(["verify", out, ...args, "--certificate-identity", IDENTITY]);
    expect(text.out).toMatch(/^OK .* is the attested log; the trace is complete and untampered\n/);
    expect(text.out).toContain(`  trusted root: ${rootPath}\n`);
    // the standard v0.2 statement verifies the same way, but cannot say the trace is whole
    const stdArgs = [
      "verify",
      `${log}.runtime-trace.sigstore.json`,
      ...args,
      "--certificate-identity",
      IDENTITY,
    ];
    const stdDefault = await cli(stdArgs);
    expect(stdDefault.code).toBe(1);
    expect(stdDefault.err).toContain(
      "TRACE_INCOMPLETE: the https://in-toto.io/attestation/runtime-trace/v0.2 predicate does not say",
    );
    const std = await cli([...stdArgs, "--allow-incomplete"]);
    expect(std.code, std.err).toBe(0);
    expect(std.out).toMatch(/^NOT CLEAN /);
    expect(std.out).toContain("predicate: https://in-toto.io/attestation/runtime-trace/v0.2");
    const wrong = await cli([
      "verify",
      out,
      ...args,
      "--certificate-identity-regexp",
      "^https://github\\.com/evil/",
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain("FAILED IDENTITY_MISMATCH");
    const issuer = await cli([
      "verify",
      out,
      "--log",
      log,
      "--trusted-root",
      rootPath,
      "--certificate-identity",
      IDENTITY,
      "--certificate-oidc-issuer",
      "https://accounts.google.com",
    ]);
    expect(issuer.code).toBe(1);
    expect(issuer.err).toContain("FAILED ISSUER_MISMATCH");
  });

  it("takes the token from SIGSTORE_ID_TOKEN", async () => {
    const out = join(dir, "env.sigstore.json");
    const a = await cli(["attest", log, "--keyless", "--public", ...endpoints(), "--out", out], {
      SIGSTORE_ID_TOKEN: token,
    });
    expect(a.code, a.err).toBe(0);
  });

  it("a private repository never goes to the public Rekor unless asked (exit 2, nothing sent)", async () => {
    const before = standIn.requests.length;
    const refused = await cli([
      "attest",
      log,
      "--keyless",
      "--private",
      "--identity-token",
      token,
      "--fulcio-url",
      standIn.fulcioURL,
      "--rekor-url",
      "https://rekor.sigstore.dev",
    ]);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain("PUBLIC_REKOR_REFUSED");
    expect(standIn.requests.length).toBe(before);
    // visibility unknown counts as private; off GitHub there is no safe default instance
    const unknown = await cli(["attest", log, "--keyless", "--identity-token", token]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("ENDPOINT_REQUIRED");
    // a GitHub event payload saying "private" selects the private path too; our own instance works
    const event = join(dir, "event.json");
    writeFileSync(event, JSON.stringify({ repository: { visibility: "private" } }));
    const gh = { GITHUB_ACTIONS: "true", GITHUB_REPOSITORY: "acme/app", GITHUB_EVENT_PATH: event };
    const viaGh = await cli(
      [
        "attest",
        log,
        "--keyless",
        "--identity-token",
        token,
        "--rekor-url",
        "https://rekor.sigstore.dev",
      ],
      gh,
    );
    expect(viaGh.err).toContain("PUBLIC_REKOR_REFUSED");
    const ok = await cli(
      [
        "attest",
        log,
        "--keyless",
        "--identity-token",
        token,
        "--fulcio-url",
        standIn.fulcioURL,
        "--tsa-url",
        standIn.tsaURL,
        "--out",
        join(dir, "priv.sigstore.json"),
      ],
      gh,
    );
    expect(ok.code, ok.err).toBe(0);
    const v = await cli([
      "verify",
      join(dir, "priv.sigstore.json"),
      "--log",
      log,
      "--trusted-root",
      rootPath,
      "--certificate-identity",
      IDENTITY,
      "--certificate-oidc-issuer",
      ISSUER,
    ]);
    expect(v.code).toBe(1);
    expect(v.err).toContain("TLOG_INVALID");
    const lax = await cli([
      "verify",
      join(dir, "priv.sigstore.json"),
      "--log",
      log,
      "--trusted-root",
      rootPath,
      "--certificate-identity",
      IDENTITY,
      "--certificate-oidc-issuer",
      ISSUER,
      "--insecure-ignore-tlog",
    ]);
    expect(lax.code, lax.err).toBe(0);
  });

  it("usage errors: exit 2 with a clear message", async () => {
    const b = `${log}.sigstore.json`;
    const cases: [string[], string][] = [
      [["verify", b], "--log FILE is required"],
      [["verify", b, "--log", log], "give --certificate-identity"],
      [
        [
          "verify",
          b,
          "--log",
          log,
          "--certificate-identity",
          "x",
          "--certificate-identity-regexp",
          "y",
        ],
        "exclusive",
      ],
      [
        [
          "verify",
          b,
          "--log",
          log,
          "--certificate-identity",
          "x",
          "--certificate-oidc-issuer",
          "y",
          "--trusted-root",
          "r.json",
          "--offline",
        ],
        "--trusted-root is the trusted root itself",
      ],
      [
        ["verify", b, "--log", log, "--key", "k", "--allow-incomplete", "--require-clean"],
        "--allow-incomplete contradicts",
      ],
      [
        ["verify", b, "--log", log, "--key", "k", "--tuf-mirror", "http://127.0.0.1:1"],
        "identity and TUF options are for certificates",
      ],
      [
        ["verify", b, "--log", log, "--key", "k", "--certificate-identity", "x"],
        "identity and TUF options are for certificates",
      ],
      [["verify", b, "--log", log, "--kee", "k"], "Unknown option '--kee'"],
      [["attest", log], "choose --key, --generate-key or --keyless"],
      [["attest", log, "--key", "k", "--keyless"], "exclusive"],
      [
        ["attest", log, "--generate-key", "--fulcio-url", "x"],
        "--fulcio-url only applies to --keyless",
      ],
    ];
    for (const [argv, message] of cases) {
      const r = await cli(argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err).toContain(message);
    }
  });

  it("unreadable inputs: exit 3", async () => {
    const r = await cli([
      "verify",
      `${log}.sigstore.json`,
      "--log",
      join(dir, "absent"),
      "--key",
      join(dir, "trace.ndjson.pub.pem"),
    ]);
    expect(r.code).toBe(3);
    expect(r.err).toContain("UNREADABLE");
    const badRoot = join(dir, "bad-root.json");
    writeFileSync(badRoot, "{}");
    const r2 = await cli([
      "verify",
      join(dir, "keyless.sigstore.json"),
      "--log",
      log,
      "--trusted-root",
      badRoot,
      "--certificate-identity",
      "x",
      "--certificate-oidc-issuer",
      "y",
    ]);
    expect(r2.code).toBe(3);
    expect(r2.err).toContain("TRUSTED_ROOT_INVALID");
  });
});

describe("dpndncy verify: the trusted root from a TUF repository (local stand-in)", () => {
  const token = mintIdentityToken({ iss: ISSUER, sub: IDENTITY });
  let tuf: TufStandIn;
  let bundle: string;
  let cache: string;
  const keyless = () => ["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER];
  beforeAll(async () => {
    tuf = await startTufStandIn(standIn.trustedRoot, dir);
    cache = join(dir, "tuf-cache");
    bundle = join(dir, "tuf.sigstore.json");
    const a = await cli([
      "attest",
      log,
      "--keyless",
      "--public",
      "--identity-token",
      token,
      "--fulcio-url",
      standIn.fulcioURL,
      "--rekor-url",
      standIn.rekorURL,
      "--out",
      bundle,
    ]);
    expect(a.code, a.err).toBe(0);
  });
  afterAll(async () => {
    await tuf.close();
  });

  it("fetches and checks the root through TUF, caches it, and --offline verifies from the cache", async () => {
    const args = ["verify", bundle, "--log", log, ...keyless(), "--tuf-cache", cache];
    const online = await cli([...args, "--tuf-mirror", tuf.url, "--tuf-root", tuf.rootPath]);
    expect(online.code, online.err).toBe(0);
    expect(online.out).toMatch(/^OK /);
    expect(online.out).toContain(`trusted root: ${tuf.url} (TUF, cache ${cache})`);
    expect(tuf.requests).toEqual([
      "/2.root.json",
      "/timestamp.json",
      "/snapshot.json",
      "/targets.json",
      "/targets/trusted_root.json",
    ]);
    // the cache holds the verified metadata: no --tuf-root needed the second time, and
    // --offline asks the repository nothing
    const before = tuf.requests.length;
    const offline = await cli([...args, "--tuf-mirror", tuf.url, "--offline"]);
    expect(offline.code, offline.err).toBe(0);
    expect(tuf.requests.length).toBe(before);
  });

  it("an unreachable repository is exit 4 with the URL and the cause; unknown or bad roots exit 3", async () => {
    const dead = "http://127.0.0.1:9"; // discard port: nothing listens
    const fresh = join(dir, "tuf-cache-fresh");
    const r = await cli([
      "verify",
      bundle,
      "--log",
      log,
      ...keyless(),
      "--tuf-mirror",
      dead,
      "--tuf-root",
      tuf.rootPath,
      "--tuf-cache",
      fresh,
    ]);
    expect(r.code).toBe(4);
    expect(r.err).toContain(
      `FAILED TRUSTED_ROOT_UNAVAILABLE: cannot fetch the trusted root from the TUF repository ${dead}`,
    );
    expect(r.err).toMatch(/ECONNREFUSED/);
    expect(r.err).toContain("--trusted-root FILE, or --offline");
    // --offline with nothing cached says so, rather than suggesting --offline
    const offline = await cli([
      "verify",
      bundle,
      "--log",
      log,
      ...keyless(),
      "--tuf-mirror",
      dead,
      "--tuf-root",
      tuf.rootPath,
      "--tuf-cache",
      join(dir, "tuf-cache-offline"),
      "--offline",
    ]);
    expect(offline.code).toBe(4);
    expect(offline.err).toContain(
      `FAILED TRUSTED_ROOT_UNAVAILABLE: --offline: nothing unexpired is cached for ${dead} in ${join(dir, "tuf-cache-offline")}`,
    );
    // a repository we hold no root for
    const unknown = await cli([
      "verify",
      bundle,
      "--log",
      log,
      ...keyless(),
      "--tuf-mirror",
      dead,
      "--tuf-cache",
      join(dir, "tuf-cache-none"),
    ]);
    expect(unknown.code).toBe(3);
    expect(unknown.err).toContain("no root of trust is known for the TUF repository");
    // a target that is not what the signed metadata says
    tuf.tamperTarget();
    const bad = await cli([
      "verify",
      bundle,
      "--log",
      log,
      ...keyless(),
      "--tuf-mirror",
      tuf.url,
      "--tuf-root",
      tuf.rootPath,
      "--tuf-cache",
      join(dir, "tuf-cache-tampered"),
    ]);
    expect(bad.code).toBe(3);
    expect(bad.err).toContain(
      `TRUSTED_ROOT_INVALID: the TUF repository ${tuf.url} gave metadata that does not verify`,
    );
  });
});

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe("dpndncy start: a failed download", () => {
  it("names the URL and the cause (not just 'fetch failed') and exits 4", async () => {
    const dead = `http://127.0.0.1:${await closedPort()}/dpndncy-agent`;
    const sha = "0".repeat(64);
    const r = await cli([
      "start",
      "--dir",
      join(dir, "start-dead"),
      "--agent-url",
      dead,
      "--agent-sha256",
      sha,
    ]);
    expect(r.code).toBe(4);
    expect(r.err).toMatch(
      new RegExp(
        `^dpndncy start: downloading the agent from ${dead} failed: fetch failed: .*ECONNREFUSED`,
      ),
    );
    // an HTTP error names the status
    const missing = await cli([
      "start",
      "--dir",
      join(dir, "start-404"),
      "--agent-url",
      `${standIn.url}/no/such/agent`,
      "--agent-sha256",
      sha,
    ]);
    expect(missing.code).toBe(4);
    expect(missing.err).toContain(
      `downloading the agent from ${standIn.url}/no/such/agent: HTTP 404`,
    );
  });
});

describe("Rekor: an entry that already exists (409) is fetched, as @actions/attest does", () => {
  it("signs and verifies when Rekor answers Conflict with the existing entry's Location", async () => {
    const conflicting = await startSigstoreStandIn({ rekorConflictOnce: true });
    try {
      const out = join(dir, "conflict.sigstore.json");
      const token = mintIdentityToken({ iss: ISSUER, sub: IDENTITY });
      const a = await cli([
        "attest",
        log,
        "--keyless",
        "--public",
        "--identity-token",
        token,
        "--fulcio-url",
        conflicting.fulcioURL,
        "--rekor-url",
        conflicting.rekorURL,
        "--out",
        out,
      ]);
      expect(a.code, a.err).toBe(0);
      const entries = conflicting.requests.filter((r) => r.includes("/api/v1/log/entries"));
      expect(entries).toEqual([
        "POST /api/v1/log/entries",
        expect.stringMatching(/^GET \/api\/v1\/log\/entries\/[0-9a-f]+$/),
      ]);
      const root = join(dir, "conflict-root.json");
      writeFileSync(root, JSON.stringify(conflicting.trustedRoot));
      const v = await cli([
        "verify",
        out,
        "--log",
        log,
        "--trusted-root",
        root,
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
        "--json",
      ]);
      expect(v.code, v.err).toBe(0);
      expect(JSON.parse(v.out)).toMatchObject({ tlogEntries: 1 });
    } finally {
      await conflicting.close();
    }
  });
});
