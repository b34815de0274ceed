#!/usr/bin/env bash
# Creates (once) the Python environment that the interop tests use: the reference `safetensors`
# package and numpy, from PyPI. Cached outside the clone, keyed by the pinned versions, so a warm
# run takes well under a second. Prints nothing when the cache is warm.
set -euo pipefail
PY_PACKAGES="safetensors==0.8.0 numpy==2.3.5"
cache="${SHARDLINE_CACHE:-$HOME/.cache/shardline}"
key=$(printf '%s' "$PY_PACKAGES" | sha256sum | cut -c1-12)
venv="$cache/venv-$key"
if [ -x "$venv/bin/python" ] && [ -f "$venv/.complete" ]; then exit 0; fi
python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "setup-python: $python not found; install Python 3.9+ (apt-get install python3 python3-venv)" >&2; exit 1; }
echo "setup-python: creating $venv with $PY_PACKAGES" >&2
rm -rf "$venv"
mkdir -p "$cache"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check $PY_PACKAGES
touch "$venv/.complete"
