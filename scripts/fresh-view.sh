#!/usr/bin/env bash
# Runs a command as it would run on a fresh machine: in a private mount namespace where no bpffs
# and no tracefs are mounted, whatever this machine (systemd, an earlier run, a developer) has
# mounted. `make test` runs the suite through it, so a test that passes only because something
# was left mounted fails here as it would on the next fresh CI machine. The namespace, and
# everything mounted in it, goes away with the command; the machine's own mounts are untouched.
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: scripts/fresh-view.sh CMD [ARG...]" >&2; exit 2; }
if [ "$(id -u)" != 0 ] || [ "${DPNDNCY_SKIP_KERNEL_TESTS:-}" = 1 ]; then
  # Not root: no namespace can be made, and the kernel tests fail (or skip, when asked) by
  # themselves, saying why. The unit tests need no fresh view.
  exec "$@"
fi
exec unshare --mount --propagation private -- /bin/sh -c '
  unmount_all() {  # every mount stacked on $1, top first (lazily: nothing of ours uses them)
    while grep -q " $1 $2 " /proc/self/mounts; do umount -l "$1" || exit 1; done
  }
  unmount_all /sys/fs/bpf bpf
  unmount_all /sys/kernel/tracing tracefs
  unmount_all /sys/kernel/debug/tracing tracefs
  exec "$@"' fresh-view "$@"
