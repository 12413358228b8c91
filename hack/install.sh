#!/usr/bin/env bash
# Install mirrorlet on this node (or into a root directory for an image or a
# test): the binary, its systemd units, its configuration and the private
# containerd's configuration. Safe to run again: it never overwrites a
# configuration file that is already there, and replaces the binary and the
# units.
#
#   hack/install.sh [--root DIR] [--binary PATH] [--containerd 1.6|2.x]
#
#   --root DIR      install under DIR instead of / (systemd is not told then)
#   --binary PATH   the mirrorlet binary to install; default: `make build`
#                   and bin/mirrorlet
#   --containerd V  the private containerd: 1.6 (default) is Debian's
#                   /usr/bin/containerd (package containerd); 2.x builds
#                   containerd 2.x from its Go module (needs Go) into
#                   /usr/local/lib/mirrorlet/containerd/bin, installs its
#                   config and a drop-in that runs it
#
# What goes where (under DIR):
#   /usr/local/bin/mirrorlet
#   /etc/systemd/system/mirrorlet.service, containerd-mirrorlet.service
#   /etc/mirrorlet/config.yaml                  (kept if present)
#   /etc/mirrorlet/containerd/config.toml       (kept if present)
#   /etc/mirrorlet/manifests/                   static pod manifests
#   /etc/mirrorlet/containerd/certs.d/          registry hosts.toml files
#   /etc/mirrorlet/cni/net.d/                   CNI network config
#   /usr/local/share/mirrorlet/rbac.yaml        for `kubectl apply -f`
#   /usr/local/share/mirrorlet/admission/       admission policies, for `kubectl apply -f`
#   /usr/local/share/mirrorlet/cni/10-mirrorlet.conflist   example network
# and with --containerd 2.x:
#   /usr/local/lib/mirrorlet/containerd/bin/{containerd,containerd-shim-runc-v2,ctr}
#   /etc/systemd/system/containerd-mirrorlet.service.d/10-containerd-2.x.conf
#   (/etc/mirrorlet/containerd/config.toml from deploy/containerd/config-2.x.toml)
set -euo pipefail

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }
usage() {
	cat >&2 <<'EOF'
usage: hack/install.sh [--root DIR] [--binary PATH] [--containerd 1.6|2.x]
  --root DIR      install under DIR instead of / (systemd is not told then)
  --binary PATH   the mirrorlet binary to install; default: `make build`
  --containerd V  1.6 (Debian's, default) or 2.x (built from its Go module)
EOF
	exit "${1:-2}"
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=/
binary=
containerd=1.6

while [[ $# -gt 0 ]]; do
	case $1 in
	--root) [[ $# -ge 2 ]] || die "--root needs a directory"; root=$2; shift 2 ;;
	--root=*) root=${1#--root=}; shift ;;
	--binary) [[ $# -ge 2 ]] || die "--binary needs a path"; binary=$2; shift 2 ;;
	--binary=*) binary=${1#--binary=}; shift ;;
	--containerd) [[ $# -ge 2 ]] || die "--containerd needs 1.6 or 2.x"; containerd=$2; shift 2 ;;
	--containerd=*) containerd=${1#--containerd=}; shift ;;
	-h | --help) usage 0 ;;
	*) echo "install.sh: unknown argument $1" >&2; usage ;;
	esac
done

[[ -n $root ]] || die "--root must not be empty"
[[ $containerd == 1.6 || $containerd == 2.x ]] || die "--containerd $containerd: want 1.6 or 2.x"
mkdir -p "$root"
root=$(cd "$root" && pwd)
if [[ $root == / ]]; then
	[[ $(id -u) == 0 ]] || die "installing into / needs root; run it with sudo (or use --root DIR)"
	prefix=
else
	prefix=$root
fi

if [[ -z $binary ]]; then
	say "building mirrorlet (make build)"
	make -C "$repo" --no-print-directory build
	binary=$repo/bin/mirrorlet
fi
[[ -f $binary && -x $binary ]] || die "binary $binary does not exist or is not executable"

# put SRC DEST MODE: install SRC as DEST, replacing it atomically (a running
# binary cannot be written in place).
put() {
	local src=$1 dest=$2 mode=$3
	mkdir -p "$(dirname "$dest")"
	install -m "$mode" "$src" "$dest.tmp.$$"
	mv -f "$dest.tmp.$$" "$dest"
	say "installed ${dest#"$prefix"}"
}

# keep SRC DEST MODE: like put, but an existing DEST (maybe edited) stays.
keep() {
	local src=$1 dest=$2 mode=$3
	if [[ -e $dest ]]; then
		if cmp -s "$src" "$dest"; then
			say "unchanged ${dest#"$prefix"}"
		else
			say "kept ${dest#"$prefix"} (edited or older; the shipped one is ${src#"$repo"/} in the source tree)"
		fi
		return 0
	fi
	put "$src" "$dest" "$mode"
}

put "$binary" "$prefix/usr/local/bin/mirrorlet" 0755
for unit in mirrorlet.service containerd-mirrorlet.service; do
	put "$repo/deploy/systemd/$unit" "$prefix/etc/systemd/system/$unit" 0644
done
keep "$repo/deploy/config/config.yaml" "$prefix/etc/mirrorlet/config.yaml" 0644
# check_config_version SHIPPED: warn when the (kept) containerd config is
# not in the format of the shipped one (2.x reads version 2, 1.6 cannot
# read version 3).
check_config_version() {
	local want got dest=$prefix/etc/mirrorlet/containerd/config.toml
	want=$(awk '$1 == "version" {print $3; exit}' "$1")
	got=$(awk '$1 == "version" {print $3; exit}' "$dest")
	if [[ $got != "$want" ]]; then
		say "WARNING: /etc/mirrorlet/containerd/config.toml is config version ${got:-?}, containerd $containerd wants version $want as in ${1#"$repo"/}: replace it"
	fi
}

dropin=$prefix/etc/systemd/system/containerd-mirrorlet.service.d/10-containerd-2.x.conf
if [[ $containerd == 2.x ]]; then
	say "building containerd 2.x (hack/containerd.sh install-node; minutes the first time)"
	"$repo/hack/containerd.sh" install-node "$prefix/usr/local/lib/mirrorlet/containerd"
	put "$repo/deploy/systemd/containerd-mirrorlet-2.x.conf" "$dropin" 0644
	keep "$repo/deploy/containerd/config-2.x.toml" "$prefix/etc/mirrorlet/containerd/config.toml" 0644
	check_config_version "$repo/deploy/containerd/config-2.x.toml"
else
	if [[ -e $dropin ]]; then
		rm -f "$dropin"
		say "removed ${dropin#"$prefix"} (containerd-mirrorlet runs Debian's containerd again)"
	fi
	keep "$repo/deploy/containerd/config.toml" "$prefix/etc/mirrorlet/containerd/config.toml" 0644
	check_config_version "$repo/deploy/containerd/config.toml"
fi
for dir in manifests containerd/certs.d cni/net.d; do
	if [[ ! -d $prefix/etc/mirrorlet/$dir ]]; then
		install -d -m 0755 "$prefix/etc/mirrorlet/$dir"
		say "created /etc/mirrorlet/$dir/"
	fi
done
put "$repo/deploy/rbac/mirrorlet.yaml" "$prefix/usr/local/share/mirrorlet/rbac.yaml" 0644
for policy in node-scoping.yaml read-only-mirrors.yaml; do
	put "$repo/deploy/admission/$policy" "$prefix/usr/local/share/mirrorlet/admission/$policy" 0644
done
put "$repo/deploy/containerd/10-mirrorlet.conflist" "$prefix/usr/local/share/mirrorlet/cni/10-mirrorlet.conflist" 0644

if [[ $root == / ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
	systemctl daemon-reload
	say "reloaded systemd"
elif [[ $root == / ]]; then
	say "systemd is not running here: run \`systemctl daemon-reload\` where it runs"
fi

cat <<EOF

Next steps:
EOF
if [[ ! -e $prefix/etc/mirrorlet/kubeconfig ]]; then
	cat <<EOF
  - Put a kubeconfig for this node at /etc/mirrorlet/kubeconfig (mode 0600),
    for user "mirrorlet:node:<node name>" in group "mirrorlet:nodes".
EOF
fi
cat <<EOF
  - Once per cluster, with cluster-admin rights, grant that group what
    mirrorlet needs, and keep each node to its own objects and mirrors
    read-only (admission policies: Kubernetes 1.30 or later):
      kubectl apply -f /usr/local/share/mirrorlet/rbac.yaml
      kubectl apply -f /usr/local/share/mirrorlet/admission/
  - Check /etc/mirrorlet/config.yaml. The node name will be $(uname -n | tr '[:upper:]' '[:lower:]')-static,
    never the kubelet's (\`systemctl edit mirrorlet\` to change it).
  - Start it:
      systemctl enable --now containerd-mirrorlet mirrorlet
  - Put static pod manifests in /etc/mirrorlet/manifests.
EOF
