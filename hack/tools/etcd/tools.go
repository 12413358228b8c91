//go:build tools

// Package tools pins the etcd server command for hack/build-envtest.sh.
package tools

import _ "go.etcd.io/etcd/server/v3"
