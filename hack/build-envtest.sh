#!/usr/bin/env bash
# Builds the envtest binaries (kube-apiserver, etcd, kubectl) from the Go module proxy
# into a cache outside the repository, and prints the directory that holds
# them (suitable for KUBEBUILDER_ASSETS). Skips the build when both binaries
# are already in the cache. The first build takes several minutes.
set -euo pipefail

ETCD_VERSION=v3.6.16
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/lib-kube.sh
source "$ROOT/hack/lib-kube.sh"
DEST="$CACHE/envtest/${KUBE_VERSION}-etcd${ETCD_VERSION}"

log() { echo "build-envtest: $*" >&2; }

build_etcd() {
  log "building etcd $ETCD_VERSION"
  (cd "$ROOT/hack/tools/etcd" &&
    CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" \
      -o "$DEST/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$DEST/etcd.tmp" "$DEST/etcd"
}

mkdir -p "$DEST"
[[ -x "$DEST/etcd" ]] || build_etcd
[[ -x "$DEST/kube-apiserver" ]] || build_kube kube-apiserver "$DEST"
[[ -x "$DEST/kubectl" ]] || build_kube kubectl "$DEST"
echo "$DEST"
