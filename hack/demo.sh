#!/usr/bin/env bash
# hack/demo.sh up|down — runs mirrorlet for real on this machine: a local
# kube-apiserver + etcd (built by hack/build-envtest.sh), a private
# containerd 2.x (built by hack/containerd.sh; MIRRORLET_CONTAINERD=1.6 runs
# Debian's 1.6 instead), a local registry on 127.0.0.1 serving
# images built from test/images, mirrorlet, and the example static pod from
# deploy/examples/manifests. Everything lives under $MIRRORLET_DEMO_DIR
# (default /tmp/mirrorlet-demo); `down` stops it by pid, unmounts and
# removes that folder.
#
# MIRRORLET_DEMO_RUNTIME selects the container runtime: "containerd"
# (default; needs root) or "fake" (the in-memory runtime: mirrors and status
# are real, containers are not; no root needed).
# MIRRORLET_DEMO_REGISTRY is the registry address (default 127.0.0.1:5000).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${MIRRORLET_DEMO_DIR:-/tmp/mirrorlet-demo}
NODE=${MIRRORLET_DEMO_NODE:-demo-node}
RUNTIME=${MIRRORLET_DEMO_RUNTIME:-containerd}
REGISTRY=${MIRRORLET_DEMO_REGISTRY:-127.0.0.1:5000}

log() { echo "demo: $*" >&2; }

# wait_for SECONDS WHAT PROC CMD...: polls CMD every 0.2 s until it
# succeeds; fails at the deadline or as soon as process PROC has died.
wait_for() {
  local deadline=$((SECONDS + $1)) what=$2 proc=$3
  shift 3
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$DIR/$proc.pid")" 2>/dev/null; then
      log "$proc exited while waiting for $what:"
      tail -20 "$DIR/$proc.log" >&2
      return 1
    fi
    if ((SECONDS > deadline)); then
      log "timed out waiting for $what; logs are in $DIR/*.log"
      return 1
    fi
    sleep 0.2
  done
}

# start NAME CMD...: runs CMD in the background, logging to DIR/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
}

stop_pid() {
  local pidfile=$1 pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

pod_running() {
  [[ $("$KUBECTL" get pod "static-web-$NODE" -o 'jsonpath={.status.phase}' 2>/dev/null) == Running ]]
}

up() {
  if [[ -f $DIR/mirrorlet.pid ]]; then
    log "already up (state in $DIR); run 'make demo-down' first"
    exit 1
  fi
  if [[ $RUNTIME == containerd ]]; then
    if [[ $(id -u) != 0 ]]; then
      log "the demo runs real containers and needs root (namespaces, cgroups, mounts): run 'sudo make demo'"
      log "(or MIRRORLET_DEMO_RUNTIME=fake make demo for mirrors without containers)"
      exit 1
    fi
    "$ROOT/hack/containerd.sh" install
  fi
  mkdir -p "$DIR/bin" "$DIR/manifests"
  log "building mirrorlet and the local API server (the first run builds kube-apiserver, etcd and kubectl: minutes)"
  ASSETS=$("$ROOT/hack/build-envtest.sh")
  KUBECTL="$ASSETS/kubectl"
  (cd "$ROOT" && make -s build && cp bin/mirrorlet "$DIR/bin/" &&
    go build -o "$DIR/bin/localcluster" ./test/tools/localcluster &&
    go build -o "$DIR/bin/testregistry" ./test/images/cmd/testregistry)
  ln -sf "$KUBECTL" "$DIR/bin/kubectl"

  log "starting kube-apiserver and etcd"
  start localcluster env KUBEBUILDER_ASSETS="$ASSETS" "$DIR/bin/localcluster" --kubeconfig "$DIR/kubeconfig"
  wait_for 120 "the API server" localcluster test -s "$DIR/kubeconfig"
  export KUBECONFIG=$DIR/kubeconfig

  local endpoint
  case $RUNTIME in
  fake) endpoint=fake:// ;;
  containerd)
    log "building the example images and serving them from a local registry on $REGISTRY"
    start registry "$DIR/bin/testregistry" --addr "$REGISTRY" --ready-file "$DIR/registry.ready"
    wait_for 120 "the registry" registry test -s "$DIR/registry.ready"
    log "starting a private containerd ${MIRRORLET_CONTAINERD:-2.x} (state in $DIR/containerd)"
    endpoint="unix://$("$ROOT/hack/containerd.sh" start "$DIR/containerd" "$REGISTRY")"
    ;;
  *) log "unknown MIRRORLET_DEMO_RUNTIME=$RUNTIME (containerd or fake)"; exit 1 ;;
  esac
  sed "s#127.0.0.1:5000#$REGISTRY#" "$ROOT/deploy/examples/manifests/static-web.yaml" >"$DIR/manifests/static-web.yaml"
  log "starting mirrorlet (node $NODE, runtime $endpoint)"
  start mirrorlet "$DIR/bin/mirrorlet" --kubeconfig "$DIR/kubeconfig" --node-name "$NODE" \
    --pod-manifest-path "$DIR/manifests" --container-runtime-endpoint "$endpoint" \
    --root-dir "$DIR/root" --pod-logs-dir "$DIR/logs" \
    --healthz-bind-address 127.0.0.1:0 --metrics-bind-address 127.0.0.1:0
  wait_for 120 "the mirror pod static-web-$NODE to be Running" mirrorlet pod_running
  "$KUBECTL" get pods -l role=myrole -o wide
  if [[ $RUNTIME == containerd ]]; then
    wait_for 30 "the web server to answer on :8080" mirrorlet curl -sf http://127.0.0.1:8080/
    log "the static pod answers on the node: $(curl -s http://127.0.0.1:8080/)"
  fi
  cat <<EOT

mirrorlet is running (log: $DIR/mirrorlet.log). Try:

  export KUBECONFIG=$DIR/kubeconfig PATH=$DIR/bin:\$PATH
  kubectl get pods -l role=myrole                      # the mirror: static-web-$NODE
  curl localhost:8080                                  # the static pod, served on the node
  kubectl delete pod static-web-$NODE                  # it comes back at once; the server never stops
  sed -i 's/role: myrole/role: myrole\n    tier: web/' $DIR/manifests/static-web.yaml
  kubectl get pods -l tier=web                         # labels follow the manifest, no restart
  sed -i 's/hello from a static pod/hello again/' $DIR/manifests/static-web.yaml
  curl localhost:8080                                  # a spec edit replaces the container
  mirrorlet logs static-web --node-name $NODE --pod-logs-dir $DIR/logs -f
                                                       # container logs, read on the node
  mv $DIR/manifests/static-web.yaml $DIR/              # the pod stops, the mirror goes
  kubectl get nodes -o wide                            # $NODE, registered by mirrorlet, with its
                                                       # CONTAINER-RUNTIME (containerd://v2.4.x)

(kubectl logs/exec need a kubelet API, which mirrorlet does not serve: use mirrorlet logs.)
Stop everything with: make demo-down
EOT
}

down() {
  stop_pid "$DIR/mirrorlet.pid"
  # Stopping containerd kills the containers it runs and unmounts their state.
  if [[ -d $DIR/containerd ]]; then
    "$ROOT/hack/containerd.sh" stop "$DIR/containerd"
  fi
  stop_pid "$DIR/registry.pid"
  stop_pid "$DIR/localcluster.pid"
  rm -rf "$DIR"
  log "stopped and removed $DIR"
}

case ${1:-} in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
