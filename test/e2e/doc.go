// Package e2e holds mirrorlet's end-to-end tests: the real mirrorlet binary
// against a real kube-apiserver + etcd (envtest), a private containerd
// started by hack/containerd.sh, and test images built by package
// test/images and pulled from a registry on 127.0.0.1. Run with
// `make test-e2e` (needs root).
package e2e
