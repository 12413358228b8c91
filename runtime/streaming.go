package runtime

import (
	"errors"
	"time"
)

// ErrUnimplemented is returned (wrapped) when the runtime does not implement
// an optional call, e.g. per-sandbox stats on containerd 1.6.
var ErrUnimplemented = errors.New("not implemented by the runtime")

// StreamOptions say which streams an exec or attach session carries, as the
// query of the kubelet's /exec and /attach routes does.
type StreamOptions struct {
	Stdin  bool
	Stdout bool
	Stderr bool
	TTY    bool
}

// Usage is one sample of a container's or a sandbox's CPU and memory.
// A nil pointer means the runtime did not report the value.
type Usage struct {
	// CPUTime is when the CPU values were sampled.
	CPUTime time.Time
	// UsageCoreNanoSeconds is the cumulative CPU time, in core-nanoseconds.
	UsageCoreNanoSeconds *uint64
	// UsageNanoCores is the CPU rate over the runtime's last interval,
	// when the runtime computes it.
	UsageNanoCores *uint64
	// MemoryTime is when the memory values were sampled.
	MemoryTime      time.Time
	WorkingSetBytes *uint64
	UsageBytes      *uint64
}

// ContainerStats is a sample of one container.
type ContainerStats struct {
	ContainerID string
	Usage
}

// SandboxStats is a sample of one pod sandbox (all its containers and the
// sandbox's own processes).
type SandboxStats struct {
	SandboxID string
	Usage
}
