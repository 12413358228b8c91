//go:build tools

// Package tools pins containerd 2.x (the daemon, its runc shim and ctr) for
// hack/containerd.sh.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
