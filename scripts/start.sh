#!/usr/bin/env bash
# npm start: the local job (`shardline demo`). Its data plane needs a nats-server: the pinned one
# is installed once, as the tests install it (built with Go from the Go module proxy, cached
# outside the clone), and handed to the demo in SHARDLINE_NATS_SERVER. Arguments go to the demo:
#   npm start -- --epochs 3 --ranks 2
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-servers.sh nats-server
version=$(sed -n 's/^NATS_SERVER_VERSION=//p' scripts/setup-servers.sh)
export SHARDLINE_NATS_SERVER="${SHARDLINE_CACHE:-$HOME/.cache/shardline}/servers/nats-server-${version}/bin/nats-server"
exec node cli/src/main.ts demo "$@"
