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

# node_api_port prints 10250 (the kubelet's port) if nothing listens there,
# else the first free port from 10350 on.
node_api_port() {
  local port
  for port in 10250 $(seq 10350 10399); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  log "no free port for the node API in 10250, 10350-10399"
  return 1
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
  # The API server calls mirrorlet's node API (kubectl logs/exec/port-forward)
  # with a client certificate that mirrorlet verifies with pki/kubelet-client-ca.crt.
  start localcluster env KUBEBUILDER_ASSETS="$ASSETS" "$DIR/bin/localcluster" --kubeconfig "$DIR/kubeconfig" \
    --agent-node "$NODE" --agent-kubeconfig "$DIR/mirrorlet.kubeconfig" --kubelet-pki-dir "$DIR/pki"
  wait_for 120 "the API server" localcluster test -s "$DIR/kubeconfig"
  export KUBECONFIG=$DIR/kubeconfig
  # mirrorlet runs as its own least-privilege identity (user
  # mirrorlet:node:$NODE in group mirrorlet:nodes, $DIR/mirrorlet.kubeconfig);
  # kubectl stays the admin's.
  log "applying mirrorlet's RBAC and admission policies (deploy/rbac, deploy/admission)"
  "$KUBECTL" apply -f "$ROOT/deploy/rbac/mirrorlet.yaml" -f "$ROOT/deploy/admission/" >/dev/null

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
  local api_port
  api_port=$(node_api_port)
  log "starting mirrorlet (node $NODE, runtime $endpoint, user mirrorlet:node:$NODE, node API on 127.0.0.1:$api_port)"
  start mirrorlet "$DIR/bin/mirrorlet" --kubeconfig "$DIR/mirrorlet.kubeconfig" --node-name "$NODE" \
    --pod-manifest-path "$DIR/manifests" --container-runtime-endpoint "$endpoint" \
    --root-dir "$DIR/root" --pod-logs-dir "$DIR/logs" \
    --healthz-bind-address 127.0.0.1:0 --metrics-bind-address 127.0.0.1:0 \
    --node-ip 127.0.0.1 --address 127.0.0.1 --port "$api_port" --client-ca-file "$DIR/pki/kubelet-client-ca.crt"
  wait_for 120 "the mirror pod static-web-$NODE to be Running" mirrorlet pod_running
  "$KUBECTL" get pods -l role=myrole -o wide
  if [[ $RUNTIME == containerd ]]; then
    wait_for 30 "the web server to answer on :8080" mirrorlet curl -sf http://127.0.0.1:8080/
    log "the static pod answers on the node: $(curl -s http://127.0.0.1:8080/)"
  fi
  cat <<EOT

mirrorlet is running (log: $DIR/mirrorlet.log) as user mirrorlet:node:$NODE
($DIR/mirrorlet.kubeconfig), under deploy/rbac and deploy/admission. Try:

  export KUBECONFIG=$DIR/kubeconfig PATH=$DIR/bin:\$PATH
  kubectl get pods -l role=myrole                      # the mirror: static-web-$NODE
  curl localhost:8080                                  # the static pod, served on the node
  kubectl delete pod static-web-$NODE                  # it comes back at once; the server never stops
  kubectl label pod static-web-$NODE tier=web          # refused: mirrors are read-only, edit the manifest
  sed -i 's/role: myrole/role: myrole\n    tier: web/' $DIR/manifests/static-web.yaml
  kubectl get pods -l tier=web                         # labels follow the manifest, no restart
  sed -i 's/hello from a static pod/hello again/' $DIR/manifests/static-web.yaml
  curl localhost:8080                                  # a spec edit replaces the container
  kubectl logs static-web-$NODE -f                     # container logs, through mirrorlet's node API
  kubectl exec static-web-$NODE -- /webserver --help   # a command in the container
  kubectl port-forward pod/static-web-$NODE 18080:8080 & curl localhost:18080
                                                       # a port of the pod, through the API server
  mirrorlet logs static-web --node-name $NODE --pod-logs-dir $DIR/logs -f
                                                       # the same logs, read on the node without the API server
  mv $DIR/manifests/static-web.yaml $DIR/              # the pod stops, the mirror goes
  kubectl get nodes -o wide                            # $NODE, registered by mirrorlet (node API on port $api_port),
                                                       # CONTAINER-RUNTIME: containerd://v2.4.x

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
