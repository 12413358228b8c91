package cri

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// Exec asks the runtime's streaming server for a URL serving cmd in the
// running container containerID with the streams of opts. The caller
// proxies the client's upgrade request to that URL; the URL is single-use
// and expires if not used soon (containerd: 1 minute).
func (r *Runtime) Exec(ctx context.Context, containerID string, cmd []string, opts mruntime.StreamOptions) (*url.URL, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rt.Exec(ctx, &runtimeapi.ExecRequest{
		ContainerId: containerID, Cmd: cmd,
		Tty: opts.TTY, Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("asking the runtime to exec in container %s: %w", containerID, wrapNotFound(err))
	}
	return parseStreamURL(resp.Url)
}

// Attach asks the runtime's streaming server for a URL attaching to the
// main process of the running container containerID. opts.TTY must match
// the container's own tty setting.
func (r *Runtime) Attach(ctx context.Context, containerID string, opts mruntime.StreamOptions) (*url.URL, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rt.Attach(ctx, &runtimeapi.AttachRequest{
		ContainerId: containerID,
		Tty:         opts.TTY, Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("asking the runtime to attach to container %s: %w", containerID, wrapNotFound(err))
	}
	return parseStreamURL(resp.Url)
}

// PortForward asks the runtime's streaming server for a URL forwarding
// connections to ports in the network namespace of sandbox sandboxID.
// ports may be empty: SPDY clients name the port per stream.
func (r *Runtime) PortForward(ctx context.Context, sandboxID string, ports []int32) (*url.URL, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sandboxID, Port: ports})
	if err != nil {
		return nil, fmt.Errorf("asking the runtime to forward ports of sandbox %s: %w", sandboxID, wrapNotFound(err))
	}
	return parseStreamURL(resp.Url)
}

func parseStreamURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing the runtime's streaming URL %q: %w", raw, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("the runtime's streaming URL %q is not absolute: is its streaming server configured?", raw)
	}
	return u, nil
}

// ListContainerStats returns a CPU and memory sample of every container
// mirrorlet created that the runtime has stats for.
func (r *Runtime) ListContainerStats(ctx context.Context) ([]mruntime.ContainerStats, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{
		Filter: &runtimeapi.ContainerStatsFilter{LabelSelector: managedSelector()}})
	if err != nil {
		return nil, fmt.Errorf("listing container stats: %w", err)
	}
	out := make([]mruntime.ContainerStats, 0, len(resp.Stats))
	for _, s := range resp.Stats {
		if s.GetAttributes() == nil {
			continue
		}
		out = append(out, mruntime.ContainerStats{
			ContainerID: s.Attributes.Id,
			Usage:       toUsage(s.Cpu, s.Memory),
		})
	}
	return out, nil
}

// ListPodSandboxStats returns a CPU and memory sample of every sandbox
// mirrorlet created. A runtime without the call gives an error wrapping
// mruntime.ErrUnimplemented. (containerd 1.6.20 has it but fails for
// sandboxes without a cgroup parent: "cgroupPath is empty".)
func (r *Runtime) ListPodSandboxStats(ctx context.Context) ([]mruntime.SandboxStats, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	resp, err := r.rt.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{
		Filter: &runtimeapi.PodSandboxStatsFilter{LabelSelector: managedSelector()}})
	if status.Code(err) == codes.Unimplemented {
		return nil, fmt.Errorf("listing pod sandbox stats: %w: %w", mruntime.ErrUnimplemented, err)
	}
	if err != nil {
		return nil, fmt.Errorf("listing pod sandbox stats: %w", err)
	}
	out := make([]mruntime.SandboxStats, 0, len(resp.Stats))
	for _, s := range resp.Stats {
		if s.GetAttributes() == nil || s.GetLinux() == nil {
			continue
		}
		out = append(out, mruntime.SandboxStats{
			SandboxID: s.Attributes.Id,
			Usage:     toUsage(s.Linux.Cpu, s.Linux.Memory),
		})
	}
	return out, nil
}

func toUsage(cpu *runtimeapi.CpuUsage, mem *runtimeapi.MemoryUsage) mruntime.Usage {
	var u mruntime.Usage
	if cpu != nil {
		u.CPUTime = time.Unix(0, cpu.Timestamp)
		u.UsageCoreNanoSeconds = value(cpu.UsageCoreNanoSeconds)
		u.UsageNanoCores = value(cpu.UsageNanoCores)
	}
	if mem != nil {
		u.MemoryTime = time.Unix(0, mem.Timestamp)
		u.WorkingSetBytes = value(mem.WorkingSetBytes)
		u.UsageBytes = value(mem.UsageBytes)
	}
	return u
}

func value(v *runtimeapi.UInt64Value) *uint64 {
	if v == nil {
		return nil
	}
	x := v.Value
	return &x
}
