#!/usr/bin/env bash
# Installs (once) the real servers and tools that tests start: nats-server, MinIO, helm and kubectl
# built with Go from the Go module proxy, and Prometheus + promtool from Debian's package. Everything lands in a cache outside the
# clone, one folder per server and version:
#   ${SHARDLINE_CACHE:-$HOME/.cache/shardline}/servers/<name>-<version>/bin/
# test/infra/binaries.ts reads the pinned versions below, so bump them here only.
# Idempotent; a warm run takes well under a second and prints nothing.
#
# Usage: bash scripts/setup-servers.sh [nats-server] [minio] [prometheus] [helm] [kubectl]   (default: all)
set -euo pipefail

NATS_SERVER_VERSION=2.10.27
PROMETHEUS_VERSION=2.42.0
# MinIO's tags (RELEASE.2025-…) are not semver, so the Go module proxy only knows pseudo-versions:
# this is the last commit of github.com/minio/minio's master branch (2026-02-12).
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
HELM_VERSION=3.22.0
# The Kubernetes version that helm reports as .Capabilities.KubeVersion and lints deprecations
# against (helm's Makefile stamps it with ldflags; a go-install build would say v1.20), and the
# version of the kubectl client built from k8s.io/kubectl (Debian's kubernetes-client is 1.20).
HELM_KUBE_VERSION=1.31
KUBECTL_VERSION=1.31.3

cache="${SHARDLINE_CACHE:-$HOME/.cache/shardline}"
servers="$cache/servers"

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- Go-built tools: NAME-VERSION/bin/NAME in the cache, built in a scratch folder and renamed into
# place with a .complete marker written last, so an interrupted or concurrent run never leaves a
# half-built tool behind the marker.

# cached NAME VERSION: true when the tool is already installed.
cached() { [ -x "$servers/$1-$2/bin/$1" ] && [ -f "$servers/$1-$2/.complete" ]; }

# scratch NAME GO_MIN WHAT: checks Go and prints a fresh scratch folder for the build.
scratch() {
  command -v go >/dev/null || die "go not found; install Go $2 or newer to build $1 $3"
  say "building $1 $3 with $(go version | cut -d' ' -f3) into $servers/"
  mkdir -p "$servers"
  mktemp -d "$servers/.$1-XXXXXX"
}

# go_install TMP PACKAGE@VERSION [go install flags...]: installs into TMP/bin.
go_install() {
  local tmp=$1 target=$2
  shift 2
  GOBIN="$tmp/bin" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}" go install "$@" "$target" \
    || build_failed "$tmp" "go install $target failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
}

build_failed() { rm -rf "$1"; die "$2"; }

# publish NAME VERSION TMP: marks the build complete and renames it into place.
publish() {
  touch "$3/.complete"
  rm -rf "$servers/$1-$2"
  mv -T "$3" "$servers/$1-$2" 2>/dev/null || rm -rf "$3"  # a concurrent run won the rename: keep its copy
}

nats_server() {
  cached nats-server "$NATS_SERVER_VERSION" && return 0
  local tmp
  tmp=$(scratch nats-server 1.23 "v$NATS_SERVER_VERSION")
  go_install "$tmp" "github.com/nats-io/nats-server/v2@v$NATS_SERVER_VERSION"
  "$tmp/bin/nats-server" --version | grep -q "v$NATS_SERVER_VERSION" \
    || build_failed "$tmp" "built nats-server does not report v$NATS_SERVER_VERSION"
  publish nats-server "$NATS_SERVER_VERSION" "$tmp"
}

minio() {
  cached minio "$MINIO_VERSION" && return 0
  local tmp
  tmp=$(scratch minio 1.24 "$MINIO_VERSION (a few minutes cold)")
  go_install "$tmp" "github.com/minio/minio@$MINIO_VERSION"
  # A go-install build reports "DEVELOPMENT.GOGET" as its version; the module line in the binary's
  # build info is what proves which source it was built from.
  go version -m "$tmp/bin/minio" | grep -q "github.com/minio/minio[[:space:]]*$MINIO_VERSION" \
    || build_failed "$tmp" "built minio was not built from github.com/minio/minio@$MINIO_VERSION"
  publish minio "$MINIO_VERSION" "$tmp"
}

prometheus() {
  local dir="$servers/prometheus-$PROMETHEUS_VERSION"
  [ -x "$dir/bin/prometheus" ] && [ -x "$dir/bin/promtool" ] && [ -f "$dir/.complete" ] && return 0
  if ! [ -x /usr/bin/prometheus ] || ! [ -x /usr/bin/promtool ]; then
    apt_install prometheus  # prometheus + promtool
  fi
  local got
  got=$(/usr/bin/prometheus --version 2>&1 | sed -n 's/^prometheus, version \([0-9.]*\).*/\1/p')
  [ "$got" = "$PROMETHEUS_VERSION" ] \
    || die "/usr/bin/prometheus is version '${got:-unknown}', this script pins $PROMETHEUS_VERSION; set PROMETHEUS_VERSION in scripts/setup-servers.sh to the installed version"
  mkdir -p "$dir/bin"
  ln -sfn /usr/bin/prometheus "$dir/bin/prometheus"
  ln -sfn /usr/bin/promtool "$dir/bin/promtool"
  touch "$dir/.complete"
}

helm() {
  cached helm "$HELM_VERSION" && return 0
  local tmp major=${HELM_KUBE_VERSION%%.*} minor=${HELM_KUBE_VERSION#*.}
  tmp=$(scratch helm 1.24 "v$HELM_VERSION (Kubernetes $HELM_KUBE_VERSION)")
  # The same -X flags as helm's Makefile: its version, and the Kubernetes version it renders and
  # lints for (pkg/lint/rules and pkg/chartutil each keep their own copy).
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  go_install "$tmp" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" -trimpath -ldflags "$ldflags"
  "$tmp/bin/helm" version --template '{{.Version}}' | grep -qx "v$HELM_VERSION" \
    || build_failed "$tmp" "built helm does not report v$HELM_VERSION"
  publish helm "$HELM_VERSION" "$tmp"
}

kubectl() {
  cached kubectl "$KUBECTL_VERSION" && return 0
  local tmp
  tmp=$(scratch kubectl 1.22 "v$KUBECTL_VERSION (k8s.io/kubectl v0.${KUBECTL_VERSION#*.})")
  # kubectl's main lives in k8s.io/kubernetes (whose go.mod replaces its staging modules, so it
  # cannot be go-installed); the published k8s.io/kubectl module has the whole command, so a
  # throwaway module with kubernetes' own three-line main builds it from the module proxy alone.
  mkdir -p "$tmp/src"
  cat >"$tmp/src/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
	os.Exit(0)
}
GO
  local module="k8s.io/kubectl@v0.${KUBECTL_VERSION#*.}" major=${KUBECTL_VERSION%%.*} rest=${KUBECTL_VERSION#*.}
  local ldflags="-s -w" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=v$KUBECTL_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=${rest%%.*} -X $pkg.gitTreeState=clean"
  done
  if ! (cd "$tmp/src" && go mod init shardline.local/kubectl >/dev/null 2>&1 \
        && go get "$module" "k8s.io/component-base@v0.${KUBECTL_VERSION#*.}" >/dev/null 2>&1 \
        && go mod tidy >/dev/null 2>&1 \
        && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}" go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/kubectl" .); then
    build_failed "$tmp" "building kubectl from $module failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
  fi
  rm -rf "$tmp/src"
  "$tmp/bin/kubectl" version --client 2>/dev/null | grep -q "Client Version: v$KUBECTL_VERSION" \
    || build_failed "$tmp" "built kubectl does not report v$KUBECTL_VERSION"
  publish kubectl "$KUBECTL_VERSION" "$tmp"
}

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(nats-server minio prometheus helm kubectl)
for name in "${wanted[@]}"; do
  case "$name" in
    nats-server|nats) nats_server ;;
    minio|s3) minio ;;
    prometheus|promtool) prometheus ;;
    helm) helm ;;
    kubectl) kubectl ;;
    *) die "unknown server '$name' (known: nats-server, minio, prometheus, helm, kubectl)" ;;
  esac
done
