#!/usr/bin/env bash
# Creates (once) the Python environment that the interop tests use: the reference `safetensors`
# package, numpy and nats-py from PyPI, plus CPU torch from Debian (python3-torch, seen through
# --system-site-packages; PyPI's Linux torch wheel drags in gigabytes of CUDA libraries).
# Cached outside the clone, keyed by the pins, so a warm run takes well under a second.
# Prints nothing when the cache is warm.
#   --print-venv   print the venv's folder (for test/support/python.ts) and exit
set -euo pipefail
PY_PACKAGES="safetensors==0.8.0 numpy==1.26.4 nats-py==2.16.0"
# Debian bookworm's CPU build (1.13.1). It is built against numpy 1.x: with numpy 2 torch.from_numpy
# and .numpy() fail ("Numpy is not available"), so numpy stays on 1.26 (ABI-compatible with it).
DEB_PACKAGES="python3-torch=1.13.1+dfsg-4"
cache="${SHARDLINE_CACHE:-$HOME/.cache/shardline}"
key=$(printf '%s' "$PY_PACKAGES $DEB_PACKAGES" | sha256sum | cut -c1-12)
venv="$cache/venv-$key"
if [ "${1:-}" = --print-venv ]; then echo "$venv"; exit 0; fi
[ $# -eq 0 ] || { echo "usage: $0 [--print-venv]" >&2; exit 2; }
# Debian's torch lives under /usr/lib/python3/dist-packages: the venv is only good while it is there.
torch_init=/usr/lib/python3/dist-packages/torch/__init__.py
if [ -x "$venv/bin/python" ] && [ -f "$venv/.complete" ] && [ -f "$torch_init" ]; then exit 0; fi

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Debian's python3, the one python3-torch is built for (a pyenv or other python3 cannot see it).
python=${PYTHON:-/usr/bin/python3}
command -v "$python" >/dev/null || die "$python not found; install Debian's python3 (apt-get install python3 python3-venv)"

if [ ! -f "$torch_init" ]; then
  # shellcheck disable=SC2086 # DEB_PACKAGES is a list
  apt_install $DEB_PACKAGES python3-venv  # CPU torch
fi

say "creating $venv with $PY_PACKAGES and Debian's $DEB_PACKAGES"
rm -rf "$venv"
mkdir -p "$cache"
"$python" -m venv --system-site-packages "$venv" || die "$python -m venv failed (apt-get install python3-venv)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location $PY_PACKAGES \
  || die "pip install $PY_PACKAGES failed"
"$venv/bin/python" -c 'import torch, safetensors.torch, numpy, nats' \
  || die "the venv cannot import torch, safetensors.torch, numpy and nats; delete $venv and look at the error above"
touch "$venv/.complete"
