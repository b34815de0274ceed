#!/usr/bin/env bash
# Creates (once) the Python environment that the interop tests use: the reference `safetensors`
# package, numpy and nats-py from PyPI, Mosaic's `mosaicml-streaming` (the MDS format's reference),
# plus CPU torch and torchvision from Debian (python3-torch, seen through --system-site-packages;
# PyPI's Linux torch wheel drags in gigabytes of CUDA libraries).
# Cached outside the clone, keyed by the pins, so a warm run takes well under a second.
# Prints nothing when the cache is warm.
#   --print-venv   print the venv's folder (for test/support/python.ts) and exit
set -euo pipefail
PY_PACKAGES="safetensors==0.8.0 numpy==1.26.4 nats-py==2.16.0"
# mosaicml-streaming and exactly what `import streaming` (MDSWriter, MDSReader, StreamingDataset)
# needs, installed with --no-deps: its declared dependencies would pull PyPI's torch with CUDA and
# every cloud SDK (boto3, azure, gcs, oci, paramiko), none of which a local dataset touches.
# transformers (<5), huggingface-hub, tokenizers, regex, filelock, packaging: streaming.base.dataloader
# imports transformers at load time. Brotli, python-snappy (+ cramjam), zstd: streaming.base.compression.
# xxhash: streaming.base.hashing. catalogue: streaming.base.registry_utils. tqdm: the uploader.
MDS_PACKAGES="mosaicml-streaming==0.13.0 transformers==4.46.3 huggingface-hub==0.26.5 tokenizers==0.20.3 regex==2024.11.6 filelock==3.16.1 packaging==24.2 tqdm==4.67.1 Brotli==1.1.0 python-snappy==0.7.3 cramjam==2.9.1 zstd==1.5.6.1 xxhash==3.5.0 catalogue==2.0.10"
# Debian bookworm's CPU build (1.13.1). It is built against numpy 1.x: with numpy 2 torch.from_numpy
# and .numpy() fail ("Numpy is not available"), so numpy stays on 1.26 (ABI-compatible with it).
# torchvision (0.14, built for that torch; with python3-pil) because `import streaming` loads
# streaming.vision.
DEB_PACKAGES="python3-torch=1.13.1+dfsg-4 python3-torchvision=0.14.1-2"
cache="${SHARDLINE_CACHE:-$HOME/.cache/shardline}"
key=$(printf '%s' "$PY_PACKAGES $MDS_PACKAGES $DEB_PACKAGES" | sha256sum | cut -c1-12)
venv="$cache/venv-$key"
if [ "${1:-}" = --print-venv ]; then echo "$venv"; exit 0; fi
[ $# -eq 0 ] || { echo "usage: $0 [--print-venv]" >&2; exit 2; }
# Debian's torch and torchvision live under /usr/lib/python3/dist-packages: the venv is only good
# while they are there.
torch_init=/usr/lib/python3/dist-packages/torch/__init__.py
torchvision_init=/usr/lib/python3/dist-packages/torchvision/__init__.py
if [ -x "$venv/bin/python" ] && [ -f "$venv/.complete" ] && [ -f "$torch_init" ] && [ -f "$torchvision_init" ]; then exit 0; fi

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Debian's python3, the one python3-torch is built for (a pyenv or other python3 cannot see it).
python=${PYTHON:-/usr/bin/python3}
command -v "$python" >/dev/null || die "$python not found; install Debian's python3 (apt-get install python3 python3-venv)"

if [ ! -f "$torch_init" ] || [ ! -f "$torchvision_init" ]; then
  # shellcheck disable=SC2086 # DEB_PACKAGES is a list
  apt_install $DEB_PACKAGES python3-venv  # CPU torch and torchvision
fi

say "creating $venv with $PY_PACKAGES, $MDS_PACKAGES (no deps) and Debian's $DEB_PACKAGES"
rm -rf "$venv"
mkdir -p "$cache"
"$python" -m venv --system-site-packages "$venv" || die "$python -m venv failed (apt-get install python3-venv)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location $PY_PACKAGES \
  || die "pip install $PY_PACKAGES failed"
# shellcheck disable=SC2086 # MDS_PACKAGES is a list
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location --no-deps $MDS_PACKAGES \
  || die "pip install --no-deps $MDS_PACKAGES failed"
"$venv/bin/python" -c 'import torch, safetensors.torch, numpy, nats; from streaming import MDSWriter, StreamingDataset; from streaming.base.format.mds import MDSReader' \
  || die "the venv cannot import torch, safetensors.torch, numpy, nats and streaming; delete $venv and look at the error above"
touch "$venv/.complete"
