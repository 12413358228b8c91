#!/usr/bin/env bash
# request-credential.sh [options] NODE — gives mirrorlet on this node its
# own client certificate, user mirrorlet:node:NODE in group mirrorlet:nodes.
#
# Run it on the node. The private key is made here and never leaves the
# node: only a CertificateSigningRequest (signer
# kubernetes.io/kube-apiserver-client) goes to the API server. With the
# caller's kubectl credentials it then approves the request (an admin), waits
# for the certificate and writes a kubeconfig that names the key and
# certificate files. Keys and the kubeconfig are 0600.
#
# When the node's operator may create CSRs but not approve them, use
# --no-approve: the script prints the approval command for an admin to run
# anywhere, and waits for the certificate.
#
# Options:
#   --dir DIR              key and certificate directory (/etc/mirrorlet/pki)
#   --kubeconfig-out FILE  kubeconfig to write (/etc/mirrorlet/kubeconfig)
#   --server URL           API server URL (default: the caller's kubeconfig's)
#   --expiration-seconds N ask for a certificate valid N seconds (the signer
#                          may shorten it); mirrorlet --rotate-certificates
#                          renews it before it expires
#   --no-approve           do not approve; wait for someone who may
#   --timeout SECONDS      how long to wait for the certificate (300)
#
# Needs: kubectl (the caller's KUBECONFIG), openssl, base64.
set -euo pipefail

dir=/etc/mirrorlet/pki
out=/etc/mirrorlet/kubeconfig
server=""
expiration=""
approve=1
timeout=300

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "request-credential: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --kubeconfig-out) out=$2; shift 2 ;;
    --server) server=$2; shift 2 ;;
    --expiration-seconds) expiration=$2; shift 2 ;;
    --no-approve) approve=0; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || usage
node=$1
[[ $node =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || die "node name $node is not a DNS subdomain"
for tool in kubectl openssl base64; do command -v "$tool" >/dev/null || die "$tool is required"; done

user="mirrorlet:node:$node"
key="$dir/mirrorlet-client.key"
cert="$dir/mirrorlet-client.crt"
csr_name="mirrorlet-node-$node-$(date +%s)"
umask 077
mkdir -p "$dir" "$(dirname "$out")"
chmod 700 "$dir"

# 1. The key (kept if there is one: a new certificate for the same key).
if [ ! -s "$key" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$key.tmp"
  openssl pkcs8 -topk8 -nocrypt -in "$key.tmp" -out "$key"
  rm -f "$key.tmp"
fi
chmod 600 "$key"

# 2. The request, and the CSR object that carries it.
request=$(openssl req -new -key "$key" -subj "/O=mirrorlet:nodes/CN=$user" | base64 | tr -d '\n')
{
  cat <<YAML
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: $csr_name
  labels: {mirrorlet.io/node: "$node"}
spec:
  signerName: kubernetes.io/kube-apiserver-client
  usages: [digital signature, client auth]
  request: $request
YAML
  [ -z "$expiration" ] || echo "  expirationSeconds: $expiration"
} | kubectl create -f - >/dev/null
echo "request-credential: created CertificateSigningRequest $csr_name for $user" >&2

# 3. Approval.
if [ "$approve" = 1 ]; then
  kubectl certificate approve "$csr_name" >/dev/null
  echo "request-credential: approved $csr_name" >&2
else
  echo "request-credential: waiting for an admin to run: kubectl certificate approve $csr_name" >&2
fi

# 4. The certificate, once the signer has issued it.
deadline=$(( $(date +%s) + timeout ))
while :; do
  issued=$(kubectl get csr "$csr_name" -o 'jsonpath={.status.certificate}')
  [ -z "$issued" ] || break
  denied=$(kubectl get csr "$csr_name" -o 'jsonpath={.status.conditions[?(@.type=="Denied")].message}')
  [ -z "$denied" ] || die "$csr_name was denied: $denied"
  [ "$(date +%s)" -lt "$deadline" ] || die "no certificate for $csr_name after ${timeout}s (approved? is a signer running for kubernetes.io/kube-apiserver-client?)"
  sleep 1
done
echo "$issued" | base64 -d >"$cert.tmp"
chmod 644 "$cert.tmp"
mv "$cert.tmp" "$cert"

# 5. The kubeconfig: the caller's API server and CA, this node's files.
[ -n "$server" ] || server=$(kubectl config view --minify -o 'jsonpath={.clusters[0].cluster.server}')
ca=$(kubectl config view --raw --minify --flatten -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}')
cat >"$out.tmp" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: cluster
  cluster:
    server: $server
$( [ -z "$ca" ] || echo "    certificate-authority-data: $ca")
users:
- name: $user
  user:
    client-certificate: $cert
    client-key: $key
contexts:
- name: mirrorlet
  context: {cluster: cluster, user: "$user"}
current-context: mirrorlet
YAML
chmod 600 "$out.tmp"
mv "$out.tmp" "$out"
not_after=$(openssl x509 -in "$cert" -noout -enddate | cut -d= -f2)
echo "request-credential: wrote $out ($user, certificate valid until $not_after)" >&2
