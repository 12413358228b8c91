#!/usr/bin/env bash
# Builds the envtest binaries (kube-apiserver, etcd, kubectl) from the Go module proxy
# into a cache outside the repository, and prints the directory that holds
# them (suitable for KUBEBUILDER_ASSETS). Skips the build when both binaries
# are already in the cache. The first build takes several minutes.
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.6.16
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${MIRRORLET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mirrorlet}
DEST="$CACHE/envtest/${KUBE_VERSION}-etcd${ETCD_VERSION}"

log() { echo "build-envtest: $*" >&2; }

version_ldflags() {
  local major minor pkg ldflags date
  major=$(echo "${KUBE_VERSION#v}" | cut -d. -f1)
  minor=$(echo "${KUBE_VERSION#v}" | cut -d. -f2)
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date -X $pkg.gitCommit=module-proxy"
  done
  echo "$ldflags"
}

# build_kube NAME: builds k8s.io/kubernetes/cmd/NAME into the cache.
build_kube() {
  log "building $1 $KUBE_VERSION (takes several minutes the first time)"
  (cd "$ROOT/hack/tools/kube-apiserver" &&
    CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$(version_ldflags)" \
      -o "$DEST/$1.tmp" "k8s.io/kubernetes/cmd/$1")
  mv "$DEST/$1.tmp" "$DEST/$1"
}

build_etcd() {
  log "building etcd $ETCD_VERSION"
  (cd "$ROOT/hack/tools/etcd" &&
    CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" \
      -o "$DEST/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$DEST/etcd.tmp" "$DEST/etcd"
}

mkdir -p "$DEST"
[[ -x "$DEST/etcd" ]] || build_etcd
[[ -x "$DEST/kube-apiserver" ]] || build_kube kube-apiserver
[[ -x "$DEST/kubectl" ]] || build_kube kubectl
echo "$DEST"
