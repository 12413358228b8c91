// Package nodetest runs the real processes of a node for tests that need
// more than one of them: a private containerd (hack/containerd.sh), the
// mirrorlet binary, and other binaries (kube-controller-manager, kubelet),
// each a separate process with its own log file, stopped by pid. It also
// applies deploy/'s YAML files and waits on conditions with deadlines.
// test/cluster uses it; it holds no state of its own between calls.
package nodetest
