// The release pins: what a tag's action and component run, written from a reproducible build.
//   node scripts/release-pin.mjs write    build/release/SHA256SUMS -> src/agent/release.json
//                                         (then `make dist` copies it to dist/release.json) and
//                                         the agent-url/agent-sha256/cli-url/cli-sha256 input
//                                         defaults of templates/agent.yml (and cli-url/
//                                         cli-sha256 of templates/sign.yml)
//   node scripts/release-pin.mjs verify   the pins equal build/release/SHA256SUMS (the release
//                                         workflow runs this at the tag: a rebuild that does not
//                                         give the pinned bytes is never published)
// The component pins both agents: agent-url/agent-sha256 (x86_64) and agent-url-arm64/
// agent-sha256-arm64 (aarch64); its before_script picks by `uname -m`.
import { readFileSync, writeFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const REPO_URL = "https://github.com/dpndncy/agent";
const FILES = ["dpndncy-agent-linux-amd64", "dpndncy-agent-linux-arm64", "cli.js"];
const TEMPLATE = "templates/agent.yml";
const SIGN_TEMPLATE = "templates/sign.yml"; // the signing component fetches the CLI only
const PIN = "src/agent/release.json";

const die = (msg) => {
  console.error(`release-pin: ${msg}`);
  process.exit(1);
};
const version = JSON.parse(readFileSync("package.json", "utf8")).version;
const baseUrl = `${REPO_URL}/releases/download/v${version}`;

function sums() {
  let text;
  try {
    text = readFileSync("build/release/SHA256SUMS", "utf8");
  } catch {
    die("build/release/SHA256SUMS is missing: run `make release` first");
  }
  const out = {};
  for (const line of text.trim().split("\n")) {
    const m = /^([0-9a-f]{64}) [ *](\S+)$/.exec(line);
    if (!m) die(`build/release/SHA256SUMS: bad line "${line}"`);
    out[m[2]] = m[1];
  }
  for (const f of FILES) if (!out[f]) die(`build/release/SHA256SUMS has no ${f}`);
  return out;
}

/** The component's pinned inputs: what `write` puts in templates/agent.yml. */
function componentDefaults(s) {
  return {
    "agent-url": `${baseUrl}/dpndncy-agent-linux-amd64`,
    "agent-sha256": s["dpndncy-agent-linux-amd64"],
    "agent-url-arm64": `${baseUrl}/dpndncy-agent-linux-arm64`,
    "agent-sha256-arm64": s["dpndncy-agent-linux-arm64"],
    "cli-url": `${baseUrl}/cli.js`,
    "cli-sha256": s["cli.js"],
  };
}

/** Rewrites only the `default:` line of each named input in the spec header. */
function setTemplateDefaults(text, defaults, file = TEMPLATE) {
  const lines = text.split("\n");
  for (const [input, value] of Object.entries(defaults)) {
    const at = lines.indexOf(`    ${input}:`);
    if (at < 0) die(`${file}: no spec input ${input}`);
    let i = at + 1;
    while (
      i < lines.length &&
      lines[i].startsWith("      ") &&
      !lines[i].startsWith("      default:")
    )
      i++;
    if (!lines[i]?.startsWith("      default:")) die(`${file}: input ${input} has no default line`);
    lines[i] = `      default: "${value}"`;
  }
  return lines.join("\n");
}

function templateDefaults(file, keys) {
  const [spec] = parseAllDocuments(readFileSync(file, "utf8"));
  const inputs = spec.toJS().spec.inputs;
  return Object.fromEntries(keys.map((k) => [k, inputs[k]?.default]));
}
const signDefaults = (d) => ({ "cli-url": d["cli-url"], "cli-sha256": d["cli-sha256"] });

const cmd = process.argv[2];
if (cmd === "write") {
  const s = sums();
  const pin = { version, baseUrl, sha256: Object.fromEntries(FILES.map((f) => [f, s[f]])) };
  writeFileSync(PIN, `${JSON.stringify(pin, null, 2)}\n`);
  writeFileSync(
    TEMPLATE,
    setTemplateDefaults(readFileSync(TEMPLATE, "utf8"), componentDefaults(s)),
  );
  const sign = signDefaults(componentDefaults(s));
  writeFileSync(
    SIGN_TEMPLATE,
    setTemplateDefaults(readFileSync(SIGN_TEMPLATE, "utf8"), sign, SIGN_TEMPLATE),
  );
  console.log(
    `release-pin: wrote ${PIN} and the ${TEMPLATE}, ${SIGN_TEMPLATE} defaults for v${version}; now run make dist`,
  );
} else if (cmd === "verify") {
  const s = sums();
  const tag = process.env.RELEASE_TAG;
  if (tag && tag !== `v${version}`) die(`tag ${tag} is not package.json's version v${version}`);
  const bad = [];
  for (const p of [PIN, "dist/release.json"]) {
    const pin = JSON.parse(readFileSync(p, "utf8"));
    if (pin.version !== version) bad.push(`${p}: version ${pin.version}, package.json ${version}`);
    if (pin.baseUrl !== baseUrl) bad.push(`${p}: baseUrl ${pin.baseUrl}, expected ${baseUrl}`);
    for (const f of FILES)
      if (pin.sha256[f] !== s[f]) bad.push(`${p}: ${f} pinned ${pin.sha256[f]}, built ${s[f]}`);
  }
  for (const [file, want] of [
    [TEMPLATE, componentDefaults(s)],
    [SIGN_TEMPLATE, signDefaults(componentDefaults(s))],
  ]) {
    const have = templateDefaults(file, Object.keys(want));
    for (const k of Object.keys(want))
      if (have[k] !== want[k])
        bad.push(`${file}: input ${k} defaults to "${have[k]}", expected "${want[k]}"`);
  }
  if (bad.length) {
    die(
      `the pins do not match this build (rebuild with the pinned toolchain, or re-pin before tagging: RELEASING.md):\n  ${bad.join("\n  ")}`,
    );
  }
  console.log(
    `release-pin: the action (dist/release.json) and the component (${TEMPLATE}) pin exactly these files`,
  );
} else {
  die("usage: node scripts/release-pin.mjs write|verify");
}
