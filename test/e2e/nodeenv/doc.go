// Package nodeenv holds what the end-to-end suites (test/e2e and
// test/e2e/faults) share to run mirrorlet on a real node: a private
// containerd started by hack/containerd.sh, the mirrorlet binary built
// from this checkout, the test web server pod, and waiting by condition.
// The suites start their own API servers and registries; this package
// knows nothing of either.
package nodeenv
