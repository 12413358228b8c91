// Package nodetest runs the real processes of a node for the suites that
// need them (test/e2e, test/e2e/faults, test/cluster): a private
// containerd started by hack/containerd.sh (stopped, killed and started
// again, read through CRI and ctr), the mirrorlet binary built from this
// checkout, other binaries (kube-controller-manager, kubelet), each a
// separate process with its own log file, stopped by pid; the test web
// server pod; deploy/'s YAML files applied; and waiting on conditions with
// deadlines. The suites start their own API servers and registries; this
// package knows nothing of either and holds no state between calls.
package nodetest
