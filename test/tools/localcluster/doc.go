// Command localcluster runs a local kube-apiserver and etcd (the envtest
// binaries from hack/build-envtest.sh) and writes an admin kubeconfig, for
// the demo and for trying mirrorlet by hand; with --agent-node it also
// writes a kubeconfig for that node's mirrorlet, user mirrorlet:node:<node>
// in group mirrorlet:nodes (a client certificate), so that mirrorlet runs
// with its own least-privilege identity. It runs until SIGINT/SIGTERM, then
// stops both and removes their data.
package main
