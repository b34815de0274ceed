#!/usr/bin/env bash
# Sets up (once) the container engine that testcontainers talks to on machines without Docker:
# Debian's podman with runc (crun fails in these VMs on setrlimit), a project-owned containers.conf
# in the cache (used through CONTAINERS_CONF; /etc is never written), and a local base image —
# since no image can be pulled — built from a debootstrap of Debian plus the repo's Node 24 binary.
#   ${SHARDLINE_CACHE:-$HOME/.cache/shardline}/containers/containers.conf
#   ${SHARDLINE_CACHE:-$HOME/.cache/shardline}/containers/base-image   (the image's name:tag)
# test/infra/containers.ts reads both. Idempotent; a warm run prints nothing.
#
# Usage: bash scripts/setup-containers.sh
set -euo pipefail

DEBIAN_SUITE=bookworm
# Bump to rebuild the base image when what goes into it changes (the key also holds the suite and
# the Node version, so a Node bump rebuilds by itself).
BASE_IMAGE_REVISION=1
BASE_IMAGE_NAME=shardline-base

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${SHARDLINE_CACHE:-$HOME/.cache/shardline}"
dir="$cache/containers"

# shellcheck source=lib.sh
source "$repo/scripts/lib.sh"

# 1. The packages. netavark + iptables give containers a network and published ports (podman only
# depends on "a network stack"); without --no-install-recommends apt would also pull buildah & co.
packages() {
  local missing=() cmd pkg
  for pair in podman:podman runc:runc debootstrap:debootstrap netavark:/usr/lib/podman/netavark iptables:iptables; do
    pkg=${pair%%:*} cmd=${pair#*:}
    if [[ $cmd == /* ]]; then [ -x "$cmd" ] || missing+=("$pkg")
    else command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_install "${missing[@]}"
}

# 2. Our containers.conf: runc instead of crun, and no default ulimits (raising RLIMIT_NOFILE is
# what fails in these VMs); netavark by name, since Debian's podman 4.3 otherwise may pick CNI
# from the /etc/cni/net.d config its common package ships, whose plugins are not installed.
conf() {
  mkdir -p "$dir"
  local want
  want=$(printf '# Written by scripts/setup-containers.sh; used through CONTAINERS_CONF.\n[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n\n[network]\nnetwork_backend = "netavark"\n')
  if [ "$(cat "$dir/containers.conf" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" >"$dir/containers.conf.tmp" && mv "$dir/containers.conf.tmp" "$dir/containers.conf"
  fi
}

# The mirror this machine's apt uses for Debian itself (not -security), from deb822 .sources files
# or one-line .list files.
apt_mirror() {
  local file uri
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    uri=$(awk -v suite="$DEBIAN_SUITE" '
      /^[[:space:]]*$/ { if (u != "" && s) { print u; exit } u = ""; s = 0; next }
      /^URIs:/ { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) s = 1 }
      END { if (u != "" && s) print u }' "$file" | head -n1)
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for file in /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
    [ -f "$file" ] || continue
    uri=$(awk -v suite="$DEBIAN_SUITE" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i+1) == suite) { print $i; exit } break } }' "$file")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  die "no apt source for Debian $DEBIAN_SUITE found in /etc/apt/sources.list.d/ or /etc/apt/sources.list"
}

# 3. The base image: debootstrap minbase + the repo's Node 24 binary, imported into podman.
base_image() {
  local node="$repo/node_modules/node/bin/node"
  [ -e "$node" ] || die "$node not found; run npm install in $repo first (it installs Node 24 from the npm package 'node')"
  node=$(readlink -f "$node")
  local node_version
  node_version=$("$node" --version) || die "$node does not run"
  local tag="$DEBIAN_SUITE-node${node_version#v}-r$BASE_IMAGE_REVISION"
  local image="$BASE_IMAGE_NAME:$tag"
  export CONTAINERS_CONF="$dir/containers.conf"
  if [ "$(cat "$dir/base-image" 2>/dev/null)" = "$image" ] && podman image exists "$image" 2>/dev/null; then
    return 0
  fi
  local mirror
  mirror=$(apt_mirror)
  say "building $image: debootstrap --variant=minbase $DEBIAN_SUITE from $mirror, plus Node $node_version"
  local root
  root=$(mktemp -d "${TMPDIR:-/tmp}/shardline-rootfs-XXXXXX")
  # shellcheck disable=SC2064  # expand now: $root is local
  trap "as_root rm -rf '$root'" EXIT
  as_root debootstrap --variant=minbase "$DEBIAN_SUITE" "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -n 20 "$root.log" >&2; die "debootstrap failed (log above, full log $root.log)"; }
  rm -f "$root.log"
  as_root install -m 0755 "$node" "$root/usr/local/bin/node"
  # Keep the image small and reproducible-ish: no apt lists or caches.
  as_root rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
  as_root tar -C "$root" -c . | podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["/usr/local/bin/node"]' - "$image" >/dev/null \
    || die "podman import of $image failed"
  local out
  out=$(podman run --rm "$image" node -e 'console.log(process.version)' 2>&1) && [ "$out" = "$node_version" ] \
    || die "$image was imported but 'node' does not run in it: $out"
  printf '%s\n' "$image" >"$dir/base-image.tmp" && mv "$dir/base-image.tmp" "$dir/base-image"
}

packages
conf
base_image
