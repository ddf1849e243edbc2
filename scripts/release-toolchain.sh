#!/usr/bin/env bash
# The release toolchain pin (scripts/release-toolchain.lock):
#   check    compare this machine's Debian release and package versions with the pin; any
#            difference is an error naming the package, the pinned and the installed version
#   install  install exactly the pinned versions (apt-get install pkg:arch=version); with
#            DPNDNCY_APT_SNAPSHOT=1 from snapshot.debian.org at the pinned timestamp, through a
#            private sources list (-o Dir::Etc::sourcelist), never by editing the system's
#   print    the lock file with this machine's versions (to update the pin)
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK=scripts/release-toolchain.lock

pins() { grep -v -e '^#' -e '^debian ' -e '^snapshot ' -e '^$' "$LOCK"; }
field() { awk -v k="$1" '$1 == k { print $2 }' "$LOCK"; }

installed() { # pkg:arch -> version, or nothing
  dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | awk '$1 == "install" && $3 == "installed" { print $4 }'
}

case "${1:-}" in
check)
  want_release=$(field debian)
  have_release=$(. /etc/os-release && echo "${VERSION_CODENAME:-unknown}")
  bad=0
  if [ "$have_release" != "$want_release" ]; then
    echo "release-toolchain: this machine runs Debian/Ubuntu '$have_release', $LOCK pins '$want_release'" >&2
    bad=1
  fi
  while read -r pkg ver; do
    have=$(installed "$pkg")
    if [ -z "$have" ]; then
      echo "release-toolchain: $pkg is not installed, $LOCK pins $ver (scripts/release-toolchain.sh install)" >&2
      bad=1
    elif [ "$have" != "$ver" ]; then
      echo "release-toolchain: $pkg is $have, $LOCK pins $ver" >&2
      bad=1
    fi
  done < <(pins)
  if [ "$bad" != 0 ]; then
    echo "release-toolchain: not the pinned toolchain: a release built here would not match the published SHA-256s (set DPNDNCY_RELEASE_UNPINNED=1 to build anyway, for testing only)" >&2
    exit 1
  fi
  ;;
install)
  [ "$(id -u)" = 0 ] || { echo "release-toolchain: install must run as root" >&2; exit 1; }
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt_opts=()
  if [ "${DPNDNCY_APT_SNAPSHOT:-}" = 1 ]; then
    ts=$(field snapshot)
    list=$(mktemp -d)/snapshot.list
    release=$(field debian)
    {
      echo "deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/$ts $release main"
      echo "deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/$ts $release-updates main"
      echo "deb [check-valid-until=no] http://snapshot.debian.org/archive/debian-security/$ts $release-security main"
    } > "$list"
    apt_opts=(-o "Dir::Etc::sourcelist=$list" -o Dir::Etc::sourceparts=-)
  fi
  apt-get "${apt_opts[@]}" update -qq
  mapfile -t want < <(pins | awk '{ print $1 "=" $2 }')
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -q --no-install-recommends --allow-downgrades "${want[@]}"
  ;;
print)
  grep -e '^#' -e '^debian ' -e '^snapshot ' "$LOCK"
  pins | while read -r pkg _; do echo "$pkg $(installed "$pkg")"; done
  ;;
*)
  echo "usage: $0 check|install|print" >&2
  exit 2
  ;;
esac
