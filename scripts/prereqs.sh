#!/usr/bin/env bash
# Installs everything `make demo` and `make test` need, idempotently, on a fresh
# Debian/Ubuntu x86_64 machine as root. Safe to run repeatedly: it only calls
# apt-get when a package is missing and `npm ci` when the lockfile changed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libzstd-dev libmd-dev
  make gcc file iproute2 python3-cryptography python3-securesystemslib
  dnsutils rsync curl sudo   # sudo: test/kernel/harden.test.ts
  systemd   # systemd-analyze verify: test/unit/deploy-systemd.test.ts (works without systemd as PID 1)
  qemu-system-x86 busybox-static cpio   # the kernel matrix (test/kernel/vm-matrix.test.ts)
  qemu-system-arm libc6-dev-arm64-cross   # the kernel matrix's arm64 kernel and workloads
  qemu-user-static   # test/unit/sha256-c.test.ts runs the arm64 agent's SHA-256 paths
  gcc-aarch64-linux-gnu   # the arm64 agent (make agent-arm64, make release)
  docker.io podman)   # real container runtimes: test/kernel/containers-runtime.test.ts
# The arm64 agent's static libraries come through multiarch (the arm64 architecture is added
# below). Debian only: Ubuntu serves arm64 from another archive (ports.ubuntu.com), which
# would need a sources entry of its own; release builds run on Debian 12 anyway.
ARM64_PKGS=(libbpf-dev:arm64 libelf-dev:arm64 zlib1g-dev:arm64 libzstd-dev:arm64 libmd-dev:arm64)
if [ "$(. /etc/os-release && echo "$ID")" = debian ]; then
  APT_PKGS+=("${ARM64_PKGS[@]}")
  want_arm64=1
else
  echo "prereqs: not Debian: the arm64 multiarch libraries are not installed (make agent-arm64 and make release need them)" >&2
  want_arm64=0
fi

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "prereqs: must run as root to install: $*" >&2
    exit 1
  fi
}

# multiarch: arm64 packages come from the same sources as amd64 ones (no sources.list edit)
added_arch=0
if [ "$want_arm64" = 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  need_root "dpkg --add-architecture arm64"
  dpkg --add-architecture arm64
  added_arch=1
fi

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root "${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may never have run `apt-get update`; the lists are then empty.
  # A newly added architecture has no package lists yet either.
  if [ "$added_arch" = 1 ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ] || \
     ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# npm ci only when node_modules is older than the lockfile (idempotent and fast).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
