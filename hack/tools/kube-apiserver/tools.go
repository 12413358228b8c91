//go:build tools

// Package tools pins the kube-apiserver and kubectl commands for
// hack/build-envtest.sh, and kube-controller-manager and kubelet for
// hack/build-kube.sh.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
