#!/usr/bin/env bash
# Builds kube-controller-manager and kubelet from the Go module proxy, exactly
# as hack/build-envtest.sh builds kube-apiserver (same tools module, same
# ldflags), into a cache outside the repository, and prints the directory that
# holds them. test/cluster runs them (MIRRORLET_KUBE_ASSETS). Skips what is
# already in the cache. Usage: hack/build-kube.sh [NAME ...] (default: both).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/lib-kube.sh
source "$ROOT/hack/lib-kube.sh"
DEST="$CACHE/kube/${KUBE_VERSION}"

log() { echo "build-kube: $*" >&2; }

mkdir -p "$DEST"
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(kube-controller-manager kubelet)
for name in "${names[@]}"; do
  case "$name" in
    kube-controller-manager|kubelet) ;;
    *) log "unknown binary $name (kube-controller-manager or kubelet)"; exit 2 ;;
  esac
  if [[ ! -x "$DEST/$name" ]]; then
    start=$(date +%s)
    build_kube "$name" "$DEST"
    log "built $name in $(( $(date +%s) - start ))s"
  fi
done
echo "$DEST"
