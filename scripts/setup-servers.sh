#!/usr/bin/env bash
# Installs (once) the real servers and tools that tests start: nats-server, MinIO, helm and kubectl
# built with Go from the Go module proxy, and Prometheus + promtool from Debian's package. Everything lands in a cache outside the
# clone, one folder per server and version:
#   ${SHARDLINE_CACHE:-$HOME/.cache/shardline}/servers/<name>-<version>/bin/
# test/infra/binaries.ts reads the pinned versions below, so bump them here only.
# Idempotent; a warm run takes well under a second and prints nothing.
#
# Usage: bash scripts/setup-servers.sh [nats-server] [minio] [prometheus] [helm] [etcd] [kubernetes] [kwok]
#        (default: all; kubernetes = kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)
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
HELM_KUBE_VERSION=1.35
# The control plane for tests, the envtest way: etcd 3.5 and Kubernetes (kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl from one build), plus kwok for fake nodes.
# 1.35.4 is the newest release whose staging modules the module proxy serves at the matching
# v0.35.4 (1.31.14's k8s.io/kube-scheduler v0.31.14, for one, is not there).
KUBERNETES_VERSION=1.35.4
KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
ETCD_VERSION=3.5.35
KWOK_VERSION=0.8.0

cache="${SHARDLINE_CACHE:-$HOME/.cache/shardline}"
servers="$cache/servers"

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- Go-built tools: NAME-VERSION/bin/NAME in the cache, built in a scratch folder and renamed into
# place with a .complete marker written last, so an interrupted or concurrent run never leaves a
# half-built tool behind the marker.

# cached NAME VERSION [BINARY]: true when the tool (its binary BINARY, NAME by default) is installed.
cached() { [ -x "$servers/$1-$2/bin/${3:-$1}" ] && [ -f "$servers/$1-$2/.complete" ]; }

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

# reports GREP_FLAGS PATTERN COMMAND...: true when COMMAND's output (stdout and stderr) matches.
# The output is captured first: `cmd | grep -q` under pipefail fails at random when grep exits at
# the first match and the command, still writing, dies of SIGPIPE (etcd --version does).
reports() {
  local flags=$1 pattern=$2 out
  shift 2
  out=$("$@" 2>&1) || true
  grep "$flags" -- "$pattern" <<<"$out" >/dev/null
}

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
  reports -q "v$NATS_SERVER_VERSION" "$tmp/bin/nats-server" --version \
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
  reports -q "github.com/minio/minio[[:space:]]*$MINIO_VERSION" go version -m "$tmp/bin/minio" \
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
  # The folder names the Kubernetes version too, so changing HELM_KUBE_VERSION rebuilds helm.
  local key="$HELM_VERSION-kube$HELM_KUBE_VERSION"
  cached helm "$key" && return 0
  local tmp major=${HELM_KUBE_VERSION%%.*} minor=${HELM_KUBE_VERSION#*.}
  tmp=$(scratch helm 1.24 "v$HELM_VERSION (Kubernetes $HELM_KUBE_VERSION)")
  # The same -X flags as helm's Makefile: its version, and the Kubernetes version it renders and
  # lints for (pkg/lint/rules and pkg/chartutil each keep their own copy).
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  go_install "$tmp" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" -trimpath -ldflags "$ldflags"
  reports -qx "v$HELM_VERSION" "$tmp/bin/helm" version --template '{{.Version}}' \
    || build_failed "$tmp" "built helm does not report v$HELM_VERSION"
  publish helm "$key" "$tmp"
}

# throwaway TMP MODULE: a scratch Go module in TMP/src, for commands whose main cannot be
# go-installed (their own go.mod has replace directives, which go install refuses).
throwaway() {
  mkdir -p "$1/src"
  (cd "$1/src" && go mod init "$2" >/dev/null 2>&1)
}

# version_ldflags VERSION: the -X flags with which Kubernetes' own build stamps its version into
# client-go and component-base (what `kubectl version` and /version report).
version_ldflags() {
  local major=${1%%.*} rest=${1#*.} pkg out=''
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    out+=" -X $pkg.gitVersion=v$1 -X $pkg.gitMajor=$major -X $pkg.gitMinor=${rest%%.*} -X $pkg.gitTreeState=clean"
    out+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$out"
}

etcd() {
  cached etcd "$ETCD_VERSION" && return 0
  local tmp
  tmp=$(scratch etcd 1.23 "v$ETCD_VERSION")
  # etcd's server module replaces its sibling modules with ../ paths, so `go install` refuses it;
  # a module of our own whose main is etcd's own one line builds it from the module proxy alone.
  throwaway "$tmp" shardline.local/etcd
  cat >"$tmp/src/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  if ! (cd "$tmp/src" && go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null 2>&1 \
        && go mod tidy >/dev/null 2>&1 \
        && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}" go build -trimpath -ldflags "-s -w" -o "$tmp/bin/etcd" .); then
    build_failed "$tmp" "building etcd from go.etcd.io/etcd/server/v3@v$ETCD_VERSION failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
  fi
  rm -rf "$tmp/src"
  reports -q "etcd Version: $ETCD_VERSION" "$tmp/bin/etcd" --version \
    || build_failed "$tmp" "built etcd does not report $ETCD_VERSION"
  publish etcd "$ETCD_VERSION" "$tmp"
}

# The control plane (kube-apiserver, kube-controller-manager, kube-scheduler) and kubectl, in one
# build so they share every compiled package.
kubernetes() {
  cached kubernetes "$KUBERNETES_VERSION" kube-apiserver && return 0
  local tmp name
  tmp=$(scratch kubernetes 1.25 "v$KUBERNETES_VERSION: ${KUBE_COMMANDS[*]} (the longest build here, 10-20 minutes cold)")
  # k8s.io/kubernetes points each staging module (k8s.io/api, k8s.io/client-go, ...) at its own
  # ./staging folder with a replace directive, which means nothing outside its repository. A
  # throwaway module requires it and replaces each of those modules with its published v0.x.y,
  # reading the list from that release's own go.mod so a version bump needs no edit here.
  throwaway "$tmp" shardline.local/kubernetes
  local mod="$tmp/kubernetes.mod" proxy
  proxy=$(go env GOPROXY | cut -d, -f1)
  if ! (cd "$tmp/src" && go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" >"$tmp/download.json" 2>&1); then
    build_failed "$tmp" "cannot download k8s.io/kubernetes@v$KUBERNETES_VERSION from the Go module proxy ($proxy): $(tail -3 "$tmp/download.json")"
  fi
  cp "$(sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p' "$tmp/download.json")" "$mod"
  local staging=() module
  while read -r module; do staging+=("$module"); done < <(sed -n 's|^[[:space:]]*\(k8s.io/[A-Za-z0-9._-]*\) => \./staging/.*|\1|p' "$mod")
  [ ${#staging[@]} -gt 10 ] || build_failed "$tmp" "found only ${#staging[@]} staging replace directives in k8s.io/kubernetes@v$KUBERNETES_VERSION's go.mod"
  local edits=(-require "k8s.io/kubernetes@v$KUBERNETES_VERSION") staged="v0.${KUBERNETES_VERSION#*.}"
  for module in "${staging[@]}"; do edits+=(-replace "$module=$module@$staged"); done
  # The release's own language version and GODEBUG defaults, so the binaries behave as released.
  local goline godebug
  goline=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$mod")
  godebug=$(sed -n 's/^godebug \(.*\)$/\1/p' "$mod")
  edits+=(-go "$goline")
  [ -z "$godebug" ] || edits+=(-godebug "$godebug")
  local packages=()
  for name in "${KUBE_COMMANDS[@]}"; do packages+=("k8s.io/kubernetes/cmd/$name"); done
  say "replacing ${#staging[@]} staging modules with their $staged releases; compiling ${packages[*]}"
  if ! (cd "$tmp/src" && go mod edit "${edits[@]}" \
        && GOFLAGS=-mod=mod go mod download >/dev/null 2>"$tmp/build.log" \
        && CGO_ENABLED=0 GOFLAGS="-mod=mod ${GOFLAGS:--buildvcs=false}" go build -trimpath \
             -ldflags "-s -w $(version_ldflags "$KUBERNETES_VERSION")" -o "$tmp/bin/" "${packages[@]}" 2>>"$tmp/build.log"); then
    build_failed "$tmp" "building Kubernetes v$KUBERNETES_VERSION failed: $(tail -15 "$tmp/build.log")"
  fi
  rm -rf "$tmp/src" "$tmp/download.json" "$tmp/build.log"
  for name in kube-apiserver kube-controller-manager kube-scheduler; do
    reports -qx "Kubernetes v$KUBERNETES_VERSION" "$tmp/bin/$name" --version \
      || build_failed "$tmp" "built $name does not report Kubernetes v$KUBERNETES_VERSION"
  done
  reports -q "Client Version: v$KUBERNETES_VERSION" "$tmp/bin/kubectl" version --client \
    || build_failed "$tmp" "built kubectl does not report v$KUBERNETES_VERSION"
  publish kubernetes "$KUBERNETES_VERSION" "$tmp"
}

kwok() {
  cached kwok "$KWOK_VERSION" && [ -f "$servers/kwok-$KWOK_VERSION/stages.yaml" ] && return 0
  local tmp
  tmp=$(scratch kwok 1.26 "v$KWOK_VERSION")
  go_install "$tmp" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION"
  reports -q "$KWOK_VERSION" "$tmp/bin/kwok" --version \
    || build_failed "$tmp" "built kwok does not report v$KWOK_VERSION"
  # kwok does nothing without Stages (how fake Nodes and Pods move through their lifecycle). Its
  # module ships the upstream ones as YAML: Nodes turn Ready at once and send a heartbeat every
  # 20-45 s (so the node lifecycle controller never marks them NotReady); Pods bound to a fake
  # Node turn Running at once, and completed or deleted ones go away. Kept beside the binary so
  # they always match its version.
  local source stage
  source=$(go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$source/kustomize/stage" ] || build_failed "$tmp" "sigs.k8s.io/kwok@v$KWOK_VERSION has no kustomize/stage folder"
  for stage in node/fast/node-initialize node/heartbeat/node-heartbeat pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    [ -f "$source/kustomize/stage/$stage.yaml" ] || build_failed "$tmp" "sigs.k8s.io/kwok@v$KWOK_VERSION has no kustomize/stage/$stage.yaml"
    { echo "---"; cat "$source/kustomize/stage/$stage.yaml"; } >>"$tmp/stages.yaml"
  done
  publish kwok "$KWOK_VERSION" "$tmp"
}

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(nats-server minio prometheus helm etcd kubernetes kwok)
for name in "${wanted[@]}"; do
  case "$name" in
    nats-server|nats) nats_server ;;
    minio|s3) minio ;;
    prometheus|promtool) prometheus ;;
    helm) helm ;;
    etcd) etcd ;;
    kubernetes|kube-apiserver|kubectl) kubernetes ;;
    kwok) kwok ;;
    *) die "unknown server '$name' (known: nats-server, minio, prometheus, helm, etcd, kubernetes, kwok)" ;;
  esac
done
