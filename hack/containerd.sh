#!/usr/bin/env bash
# Start or stop a private containerd for mirrorlet: its own root, state,
# socket and CNI config under DIR, nothing shared with a system containerd
# or a kubelet. Used by the end-to-end tests and `make demo`.
#
# Two containerd versions: 2.x (default), built from the Go module
# github.com/containerd/containerd/v2 at the version pinned in
# hack/tools/containerd/go.mod into a cache outside the repository, and
# Debian's 1.6 (MIRRORLET_CONTAINERD=1.6), end-of-life, kept to prove the
# fallback paths (no CRI container events). runc and the CNI plugins are
# Debian's for both.
#
#   hack/containerd.sh install
#       apt-get install containerd (1.6), runc and the CNI plugins if
#       missing, and build containerd 2.x (as `build`).
#   hack/containerd.sh build
#       build containerd, containerd-shim-runc-v2 and ctr 2.x into
#       $MIRRORLET_CACHE/containerd/VERSION (default cache
#       ~/.cache/mirrorlet) unless there already, and print that directory.
#   hack/containerd.sh path
#       print that directory (whether built or not).
#   hack/containerd.sh install-node [PREFIX]
#       build 2.x and copy its three binaries into PREFIX/bin (default
#       /usr/local/lib/mirrorlet/containerd, where the drop-in
#       deploy/systemd/containerd-mirrorlet-2.x.conf runs it; kept out of
#       /usr/local/bin so that no other containerd picks up this shim).
#   hack/containerd.sh start DIR [REGISTRY_HOST [SANDBOX_IMAGE]]
#       write DIR/config.toml, start containerd (pid in DIR/containerd.pid,
#       log in DIR/containerd.log, its binaries linked as DIR/bin), wait
#       for DIR/containerd.sock. REGISTRY_HOST (e.g. 127.0.0.1:5000) is
#       pulled from over plain HTTP. MIRRORLET_CONTAINERD=1.6 runs Debian's
#       1.6 instead of 2.x.
#   hack/containerd.sh stop DIR
#       kill every container it runs, stop containerd, unmount what is left
#       under DIR and remove DIR.
set -euo pipefail

die() { echo "containerd.sh: $*" >&2; exit 1; }

need_root() {
	[[ $(id -u) == 0 ]] || die "$1 needs root (containers need namespaces, cgroups and mounts); run it with sudo"
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=$ROOT/hack/tools/containerd
CACHE=${MIRRORLET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mirrorlet}
# The containerd 2.x version: the one hack/tools/containerd/go.mod pins.
CONTAINERD_VERSION=$(awk '{sub(/^require /, "")} $1 == "github.com/containerd/containerd/v2" {print $2; exit}' "$TOOLS/go.mod")
[[ -n $CONTAINERD_VERSION ]] || die "no github.com/containerd/containerd/v2 in $TOOLS/go.mod"
CONTAINERD_PKG=github.com/containerd/containerd/v2
# Pure Go: the btrfs snapshotter needs cgo, devmapper and zfs are not used.
BUILD_TAGS="no_btrfs no_devmapper no_zfs urfave_cli_no_docs"

bin_dir_2() { echo "$CACHE/containerd/$CONTAINERD_VERSION"; }

# build_one NAME [EXTRA_TAGS]: builds cmd/NAME of the pinned module.
build_one() {
	local dest ldflags
	dest=$(bin_dir_2)
	ldflags="-s -w -X $CONTAINERD_PKG/version.Version=$CONTAINERD_VERSION"
	ldflags+=" -X $CONTAINERD_PKG/version.Revision=module-proxy -X $CONTAINERD_PKG/version.Package=$CONTAINERD_PKG"
	(cd "$TOOLS" && CGO_ENABLED=0 go build -mod=mod -trimpath -tags "$BUILD_TAGS ${2:-}" \
		-ldflags "$ldflags" -o "$dest/$1.tmp.$$" "$CONTAINERD_PKG/cmd/$1")
	# A unique temporary name: two builds at once (two test runs on a new
	# cache) each move a whole binary into place.
	mv -f "$dest/$1.tmp.$$" "$dest/$1"
}

# build: containerd 2.x, its runc shim and ctr into the cache, once.
build() {
	local dest name
	dest=$(bin_dir_2)
	mkdir -p "$dest"
	for name in containerd containerd-shim-runc-v2 ctr; do
		[[ -x $dest/$name ]] && continue
		command -v go >/dev/null || die "building containerd $CONTAINERD_VERSION needs Go (https://go.dev/dl)"
		echo "containerd.sh: building $name $CONTAINERD_VERSION (a few minutes the first time)" >&2
		if [[ $name == containerd-shim-runc-v2 ]]; then build_one "$name" no_grpc; else build_one "$name"; fi
	done
	echo "$dest"
}

# install_node PREFIX: 2.x's binaries into PREFIX/bin for a real node.
install_node() {
	local prefix=${1:-/usr/local/lib/mirrorlet/containerd} src name
	src=$(build)
	mkdir -p "$prefix/bin"
	for name in containerd containerd-shim-runc-v2 ctr; do
		# Replaced, not written over: a running containerd or shim keeps
		# its file.
		install -m 0755 "$src/$name" "$prefix/bin/$name.tmp.$$"
		mv -f "$prefix/bin/$name.tmp.$$" "$prefix/bin/$name"
	done
	echo "containerd.sh: installed containerd $CONTAINERD_VERSION into $prefix/bin" >&2
}

install_all() {
	install_debian
	build >/dev/null
}

# install_debian: runc, the CNI plugins and containerd 1.6 from Debian.
install_debian() {
	local missing=()
	# MIRRORLET_CONTAINERD=1.6 runs Debian's, in /usr/bin.
	[[ -x /usr/bin/containerd ]] || missing+=(containerd)
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

# config_v2 DIR SANDBOX: containerd 1.6's config (format version 2).
config_v2() {
	local dir=$1 sandbox=$2
	cat <<EOF
# Private containerd 1.6 for mirrorlet (written by hack/containerd.sh).
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
}

# config_v3 DIR SANDBOX: containerd 2.x's config (format version 3: the CRI
# plugin split into runtime, images and the gRPC service), the same
# settings as config_v2, plus what 2.x added that would reach outside DIR
# (the NRI socket in /var/run/nri, /opt/containerd).
config_v3() {
	local dir=$1 sandbox=$2
	cat <<EOF
# Private containerd 2.x for mirrorlet (written by hack/containerd.sh).
version = 3
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

[plugins."io.containerd.cri.v1.runtime"]
  # Needed where the sandbox itself runs with a raised OOM score.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$dir/cni/net.d"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$sandbox"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$dir/certs.d"

[plugins."io.containerd.grpc.v1.cri"]
  # The CRI streaming server (exec, attach, port-forward): loopback only, a
  # free port, plain HTTP; mirrorlet's node API proxies to it.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false

[plugins."io.containerd.nri.v1.nri"]
  disable = true

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF
}

write_config() {
	local dir=$1 registry=$2 sandbox=$3 version=$4 bridge octet
	read -r bridge octet < <(bridge_of "$dir")
	mkdir -p "$dir/root" "$dir/state" "$dir/certs.d" "$dir/cni/net.d"
	if [[ $version == 1.6 ]]; then
		config_v2 "$dir" "$sandbox" >"$dir/config.toml"
	else
		config_v3 "$dir" "$sandbox" >"$dir/config.toml"
	fi
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

# select_version: sets version to the containerd MIRRORLET_CONTAINERD asks
# for (2 or 1.6), or dies. (Not in $(...), where die would end only the
# subshell.)
select_version() {
	case ${MIRRORLET_CONTAINERD:-2} in
	2 | 2.x | "$CONTAINERD_VERSION" | "${CONTAINERD_VERSION#v}") version=2 ;;
	1.6) version=1.6 ;;
	*) die "MIRRORLET_CONTAINERD=$MIRRORLET_CONTAINERD: want 2 (containerd $CONTAINERD_VERSION, built) or 1.6 (Debian's)" ;;
	esac
}

start() {
	local dir=$1 registry=${2:-} sandbox=${3:-} version bin
	need_root "starting containerd"
	select_version
	install_debian
	if [[ $version == 1.6 ]]; then bin=/usr/bin; else bin=$(build); fi
	[[ -z $sandbox && -n $registry ]] && sandbox="$registry/mirrorlet/pause:v1"
	[[ -z $sandbox ]] && sandbox="registry.k8s.io/pause:3.10"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [[ -f $dir/containerd.pid ]] && kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null; then
		echo "$dir/containerd.sock"
		return 0
	fi
	(( ${#dir} < 80 )) || die "DIR $dir is too long for a unix socket path"
	write_config "$dir" "$registry" "$sandbox" "$version"
	# DIR/bin: this instance's containerd, shim and ctr. containerd finds
	# its shim through PATH, so DIR/bin comes first (Debian's 1.6 shim is
	# in /usr/bin).
	ln -sfn "$bin" "$dir/bin"
	PATH="$dir/bin:$PATH" setsid "$dir/bin/containerd" --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 </dev/null &
	echo $! >"$dir/containerd.pid"
	local i
	for ((i = 0; i < 300; i++)); do
		if [[ -S $dir/containerd.sock ]] && "$dir/bin/ctr" --address "$dir/containerd.sock" version >/dev/null 2>&1; then
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
	local sock=$dir/containerd.sock pid="" ctr=ctr
	[[ -x $dir/bin/ctr ]] && ctr=$dir/bin/ctr
	[[ -f $dir/containerd.pid ]] && pid=$(cat "$dir/containerd.pid")
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ -S $sock ]]; then
		local ns ids id
		for ns in $("$ctr" --address "$sock" namespaces list -q 2>/dev/null); do
			ids=$("$ctr" --address "$sock" -n "$ns" tasks list -q 2>/dev/null || true)
			for id in $ids; do "$ctr" --address "$sock" -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true; done
			# A killed task is deleted once it has exited; one already gone
			# (its pod removed meanwhile) is "not found": nothing to wait for.
			local out
			for id in $ids; do
				for _ in {1..50}; do
					out=$("$ctr" --address "$sock" -n "$ns" tasks delete "$id" 2>&1) && break
					[[ $out == *"not found"* ]] && break
					sleep 0.1
				done
			done
			for id in $("$ctr" --address "$sock" -n "$ns" containers list -q 2>/dev/null || true); do
				"$ctr" --address "$sock" -n "$ns" containers delete "$id" >/dev/null 2>&1 || true
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
install) install_all ;;
build) build ;;
path) bin_dir_2 ;;
install-node) install_node "${2:-}" ;;
start) [[ $# -ge 2 ]] || die "usage: $0 start DIR [REGISTRY_HOST [SANDBOX_IMAGE]]"; start "${@:2}" ;;
stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
*) die "usage: $0 install | build | path | install-node [PREFIX] | start DIR [REGISTRY_HOST [SANDBOX_IMAGE]] | stop DIR" ;;
esac
