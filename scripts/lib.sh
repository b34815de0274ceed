# Shared by the setup scripts (source it after `set -euo pipefail`): messages prefixed with the
# calling script's name, commands as root, and the one way we install Debian packages.

tag=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
die() { echo "$tag: $*" >&2; exit 1; }
say() { echo "$tag: $*" >&2; }

# Runs a command as root, through sudo when we are not root.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run '$*' (no sudo found); run this script as root"
  fi
}

# apt_install PKG[=VERSION]...: installs Debian packages without recommends, waiting for a dpkg
# lock held by another apt, and without starting their services (policy-rc.d 101: tests start
# their own servers, and a system Prometheus would squat its port). The package lists are
# refreshed first only when they do not know the first package (slow, and noisy).
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install Debian's $* by hand"
  # (Captured first: grep -q closing the pipe early would fail the pipeline under pipefail.)
  local known
  known=$(apt-cache policy "${1%%=*}" 2>/dev/null || true)
  if ! grep -q 'Candidate: [0-9]' <<<"$known"; then
    say "apt-get update (the package lists do not know ${1%%=*})"
    as_root apt-get update -qq || die "apt-get update failed"
  fi
  say "installing Debian's $*"
  local policy=/usr/sbin/policy-rc.d created='' rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod +x "$policy" && created=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
    --no-install-recommends "$@" >/dev/null || rc=$?
  if [ -n "$created" ]; then as_root rm -f "$policy"; fi
  [ "$rc" -eq 0 ] || die "apt-get install $* failed (exit $rc)"
}
