// Bundles the action's entry points and the CLI into self-contained ESM files.
// Usage: node scripts/bundle.mjs OUTDIR   (the dist check bundles into a temp dir and diffs)
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

const outdir = process.argv[2] ?? "dist";
const entryPoints = {
  pre: "src/action/pre.ts",
  main: "src/action/main.ts",
  post: "src/action/post.ts",
  cli: "src/cli.ts",
};

await build({
  entryPoints,
  outdir,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  // Several dependencies are CommonJS and call require() for node built-ins.
  banner: {
    js: "import { createRequire as __dpndncyCreateRequire } from 'node:module'; const require = __dpndncyCreateRequire(import.meta.url);",
  },
  // No code splitting: each entry is one self-contained file, so the CLI can be fetched and
  // pinned by a single SHA-256 (GitLab component, jobs without a checkout of this repo).
  legalComments: "linked",
  sourcemap: false,
  minify: false,
  logLevel: "warning",
  // Build metadata must not leak into the bundle, or the stale check would always fail.
  define: { "process.env.DPNDNCY_BUNDLED": '"1"' },
});

// The release pin (src/agent/release.ts) is read at run time from beside the bundles, so that
// pinning a release changes no bundle's bytes.
copyFileSync("src/agent/release.json", join(outdir, "release.json"));
