#!/usr/bin/env bash
# Start or stop a private containerd for mirrorlet: its own root, state,
# socket and CNI config under DIR, nothing shared with a system containerd
# or a kubelet. Used by the end-to-end tests and `make demo`.
#
#   hack/containerd.sh install
#       apt-get install containerd, runc and the CNI plugins if missing.
#   hack/containerd.sh start DIR [REGISTRY_HOST [SANDBOX_IMAGE]]
#       write DIR/config.toml, start containerd (pid in DIR/containerd.pid,
#       log in DIR/containerd.log), wait for DIR/containerd.sock.
#       REGISTRY_HOST (e.g. 127.0.0.1:5000) is pulled from over plain HTTP.
#   hack/containerd.sh stop DIR
#       kill every container it runs, stop containerd, unmount what is left
#       under DIR and remove DIR.
set -euo pipefail

die() { echo "containerd.sh: $*" >&2; exit 1; }

need_root() {
	[[ $(id -u) == 0 ]] || die "$1 needs root (containers need namespaces, cgroups and mounts); run it with sudo"
}

install() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	[[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
	command -v ip >/dev/null || missing+=(iproute2)
	command -v iptables >/dev/null || missing+=(iptables)
	[[ ${#missing[@]} == 0 ]] && return 0
	need_root "installing ${missing[*]}"
	echo "containerd.sh: installing ${missing[*]} from Debian's packages" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2 || apt-get update >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	# The package starts the system containerd; ours does not need it.
	if command -v systemctl >/dev/null && systemctl is-active -q containerd 2>/dev/null; then
		echo "containerd.sh: note: the system containerd is running; mirrorlet uses its own" >&2
	fi
}

# bridge_of DIR: the CNI bridge name and subnet octet of the instance in
# DIR, derived from DIR so that instances (the demo and a test run, say)
# never share, or delete, each other's bridge.
bridge_of() {
	local h
	h=$(printf %s "$1" | md5sum | cut -c1-6)
	echo "ml$h $((16#${h:0:2}))"
}

write_config() {
	local dir=$1 registry=$2 sandbox=$3 bridge octet
	read -r bridge octet < <(bridge_of "$dir")
	mkdir -p "$dir/root" "$dir/state" "$dir/certs.d" "$dir/cni/net.d"
	cat >"$dir/config.toml" <<EOF
# Private containerd for mirrorlet (written by hack/containerd.sh).
version = 2
root = "$dir/root"
state = "$dir/state"
oom_score = 0

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox"
  # Needed where the sandbox itself runs with a raised OOM score.
  restrict_oom_score_adj = true
  enable_selinux = false
  # The CRI streaming server (exec, attach, port-forward): loopback only, a
  # free port, plain HTTP; mirrorlet's node API proxies to it.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
EOF
	cat >"$dir/cni/net.d/10-mirrorlet.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "mirrorlet",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "dataDir": "$dir/cni/ipam", "ranges": [[{"subnet": "10.88.$octet.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
	if [[ -n $registry ]]; then
		mkdir -p "$dir/certs.d/$registry"
		cat >"$dir/certs.d/$registry/hosts.toml" <<EOF
server = "http://$registry"

[host."http://$registry"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
	fi
}

start() {
	local dir=$1 registry=${2:-} sandbox=${3:-}
	need_root "starting containerd"
	install
	[[ -z $sandbox && -n $registry ]] && sandbox="$registry/mirrorlet/pause:v1"
	[[ -z $sandbox ]] && sandbox="registry.k8s.io/pause:3.10"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [[ -f $dir/containerd.pid ]] && kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null; then
		echo "$dir/containerd.sock"
		return 0
	fi
	(( ${#dir} < 80 )) || die "DIR $dir is too long for a unix socket path"
	write_config "$dir" "$registry" "$sandbox"
	setsid containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 </dev/null &
	echo $! >"$dir/containerd.pid"
	local i
	for ((i = 0; i < 300; i++)); do
		if [[ -S $dir/containerd.sock ]] && ctr --address "$dir/containerd.sock" version >/dev/null 2>&1; then
			echo "$dir/containerd.sock"
			return 0
		fi
		kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null || { tail -20 "$dir/containerd.log" >&2; die "containerd exited"; }
		sleep 0.1
	done
	tail -20 "$dir/containerd.log" >&2
	die "containerd did not come up within 30s"
}

stop() {
	local dir=$1
	[[ -d $dir ]] || return 0
	dir=$(cd "$dir" && pwd)
	[[ -f $dir/config.toml ]] || die "$dir was not made by this script (no config.toml); not touching it"
	need_root "stopping containerd"
	local sock=$dir/containerd.sock pid=""
	[[ -f $dir/containerd.pid ]] && pid=$(cat "$dir/containerd.pid")
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ -S $sock ]]; then
		local ns ids id
		for ns in $(ctr --address "$sock" namespaces list -q 2>/dev/null); do
			ids=$(ctr --address "$sock" -n "$ns" tasks list -q 2>/dev/null || true)
			for id in $ids; do ctr --address "$sock" -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true; done
			for id in $ids; do
				for _ in {1..50}; do
					ctr --address "$sock" -n "$ns" tasks delete "$id" >/dev/null 2>&1 && break
					sleep 0.1
				done
			done
			for id in $(ctr --address "$sock" -n "$ns" containers list -q 2>/dev/null || true); do
				ctr --address "$sock" -n "$ns" containers delete "$id" >/dev/null 2>&1 || true
			done
		done
	fi
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		for _ in {1..100}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
	fi
	# Shims of killed tasks exit on their own; wait for those of this DIR.
	local left
	for _ in {1..50}; do
		left=$(pgrep -f "containerd-shim.*-address $sock" || true)
		[[ -z $left ]] && break
		sleep 0.1
	done
	[[ -n ${left:-} ]] && kill -9 $left 2>/dev/null || true
	# Unmount anything still mounted under DIR (deepest first).
	local m
	for m in $(awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	local bridge _
	read -r bridge _ < <(bridge_of "$dir")
	ip link delete "$bridge" 2>/dev/null || true
	rm -rf "$dir"
}

case ${1:-} in
install) install ;;
start) [[ $# -ge 2 ]] || die "usage: $0 start DIR [REGISTRY_HOST [SANDBOX_IMAGE]]"; start "${@:2}" ;;
stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
*) die "usage: $0 install | start DIR [REGISTRY_HOST [SANDBOX_IMAGE]] | stop DIR" ;;
esac
