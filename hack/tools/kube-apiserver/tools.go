//go:build tools

// Package tools pins the kube-apiserver and kubectl commands for
// hack/build-envtest.sh.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
