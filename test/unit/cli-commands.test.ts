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
    expect((await cli(["verify", out, "--log", tampered, "--key", pub])).out).toContain(
      "NOT CLEAN — LOG_SHA256_MISMATCH",
    );
    const r = await cli(["verify", out, "--log", tampered, "--key", pub, "--require-clean"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("TRACE_NOT_CLEAN");
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
    // the standard v0.2 statement verifies the same way
    const std = await cli([
      "verify",
      `${log}.runtime-trace.sigstore.json`,
      ...args,
      "--certificate-identity",
      IDENTITY,
    ]);
    expect(std.code, std.err).toBe(0);
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
        ],
        "--trusted-root is required",
      ],
      [
        ["verify", b, "--log", log, "--key", "k", "--certificate-identity", "x"],
        "identity options are for certificates",
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
