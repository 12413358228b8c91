// Package cluster tests mirrorlet with the cluster components around it
// that envtest does not run, all real processes: kube-apiserver and etcd
// (envtest), kube-controller-manager (garbage collector, node lifecycle,
// taint eviction and pod GC controllers, as its own identity
// system:kube-controller-manager), the mirrorlet binary as its own
// identity with deploy/rbac and deploy/admission applied, a private
// containerd, and, where the host allows it, a kubelet with its own
// containerd next to mirrorlet. kube-controller-manager and kubelet are
// built from the Go module proxy by hack/build-kube.sh, whose folder
// MIRRORLET_KUBE_ASSETS names. Run with `make test-cluster` (needs root).
package cluster
