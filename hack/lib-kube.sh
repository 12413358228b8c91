# Shared by hack/build-envtest.sh and hack/build-kube.sh: the Kubernetes
# version, the cache, and how a k8s.io/kubernetes command is built from the
# pinned module hack/tools/kube-apiserver. Sourced, not run.

KUBE_VERSION=v1.37.2
CACHE=${MIRRORLET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mirrorlet}

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

# build_kube NAME DEST: builds k8s.io/kubernetes/cmd/NAME into DEST/NAME.
build_kube() {
  log "building $1 $KUBE_VERSION (takes several minutes the first time)"
  (cd "$ROOT/hack/tools/kube-apiserver" &&
    CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$(version_ldflags)" \
      -o "$2/$1.tmp" "k8s.io/kubernetes/cmd/$1")
  mv "$2/$1.tmp" "$2/$1"
}
