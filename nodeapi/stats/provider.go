package stats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// Runtime is what the Provider needs of the container runtime;
// *cri.Runtime implements it.
type Runtime interface {
	// ListPods returns mirrorlet's pod sandboxes with their containers.
	ListPods(ctx context.Context) ([]mruntime.Pod, error)
	// ListContainerStats returns a sample of every container the runtime
	// has figures for (running ones, at least).
	ListContainerStats(ctx context.Context) ([]mruntime.ContainerStats, error)
	// ListPodSandboxStats returns a sample of every sandbox, or an error
	// wrapping mruntime.ErrUnimplemented when the runtime has no such call.
	ListPodSandboxStats(ctx context.Context) ([]mruntime.SandboxStats, error)
}

// Config configures a Provider.
type Config struct {
	// Runtime gives pods and their figures. Required.
	Runtime Runtime
	// NodeName names the node in the Summary. Required.
	NodeName string
	// ProcDir is where the node's stat and meminfo are read. Default /proc.
	ProcDir string
	Log     logr.Logger
}

// Provider computes Summaries. It is safe for concurrent use.
type Provider struct {
	cfg Config

	mu sync.Mutex
	// cpu holds the previous CPU sample by key ("c/<id>" for a container,
	// "p/<sandbox id>" for a pod, "node"), for usageNanoCores.
	cpu map[string]cpuSample
	// sandboxStatsAfter is when to ask the runtime for sandbox stats again
	// after it failed to give them.
	sandboxStatsAfter time.Time
}

type cpuSample struct {
	at        time.Time
	total     uint64
	nanoCores *uint64
}

// New returns a Provider for cfg.
func New(cfg Config) (*Provider, error) {
	if cfg.Runtime == nil {
		return nil, errors.New("stats: a runtime is required")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("stats: a node name is required")
	}
	if cfg.ProcDir == "" {
		cfg.ProcDir = "/proc"
	}
	return &Provider{cfg: cfg, cpu: map[string]cpuSample{}}, nil
}

// Summary returns the node's and every running static pod's CPU and memory.
func (p *Provider) Summary(ctx context.Context) (*statsapi.Summary, error) {
	pods, err := p.cfg.Runtime.ListPods(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the runtime's pods: %w", err)
	}
	cstats, err := p.cfg.Runtime.ListContainerStats(ctx)
	if err != nil {
		return nil, err
	}
	byContainer := make(map[string]mruntime.Usage, len(cstats))
	for _, s := range cstats {
		byContainer[s.ContainerID] = s.Usage
	}
	bySandbox := p.sandboxStats(ctx)
	node, err := p.nodeStats()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{"node": true}
	s := &statsapi.Summary{Node: *node, Pods: []statsapi.PodStats{}}
	for _, pod := range p.latestSandboxes(pods) {
		s.Pods = append(s.Pods, p.podStats(pod, byContainer, bySandbox, seen))
	}
	p.forget(seen)
	return s, nil
}

// sandboxRetry is how long the Provider sums containers after the runtime
// failed to give sandbox stats (containerd 1.6 fails for sandboxes without
// a cgroup parent, as mirrorlet's are) before asking again.
const sandboxRetry = 5 * time.Minute

// sandboxStats returns the runtime's sandbox figures by sandbox ID, or nil
// when it has none: an unimplemented call is never asked again, a failed
// one not for sandboxRetry.
func (p *Provider) sandboxStats(ctx context.Context) map[string]mruntime.Usage {
	p.mu.Lock()
	skip := time.Now().Before(p.sandboxStatsAfter)
	p.mu.Unlock()
	if skip {
		return nil
	}
	stats, err := p.cfg.Runtime.ListPodSandboxStats(ctx)
	if err != nil {
		retry := time.Now().Add(sandboxRetry)
		if errors.Is(err, mruntime.ErrUnimplemented) {
			retry = time.Now().Add(100 * 365 * 24 * time.Hour)
		}
		p.cfg.Log.Info("No pod sandbox stats from the runtime; pod figures are the sums of their containers'",
			"error", err.Error(), "askAgainAt", retry)
		p.mu.Lock()
		p.sandboxStatsAfter = retry
		p.mu.Unlock()
		return nil
	}
	out := make(map[string]mruntime.Usage, len(stats))
	for _, s := range stats {
		out[s.SandboxID] = s.Usage
	}
	return out
}

// latestSandboxes keeps, per pod UID, the newest ready sandbox of the
// pods of this node (named "<name>-<node>"; other nodes' pods are there
// only where several mirrorlets share a runtime, as in tests).
func (p *Provider) latestSandboxes(pods []mruntime.Pod) []*mruntime.Pod {
	latest := map[string]*mruntime.Pod{}
	var order []string
	for i := range pods {
		pod := &pods[i]
		if !pod.Ready || !strings.HasSuffix(pod.Name, "-"+p.cfg.NodeName) {
			continue
		}
		key := string(pod.UID)
		old, ok := latest[key]
		if !ok {
			order = append(order, key)
		}
		if !ok || pod.CreatedAt.After(old.CreatedAt) {
			latest[key] = pod
		}
	}
	out := make([]*mruntime.Pod, 0, len(order))
	for _, k := range order {
		out = append(out, latest[k])
	}
	return out
}

// podStats returns the figures of pod and its running containers.
func (p *Provider) podStats(pod *mruntime.Pod, byContainer, bySandbox map[string]mruntime.Usage, seen map[string]bool) statsapi.PodStats {
	ps := statsapi.PodStats{
		PodRef:     statsapi.PodReference{Name: pod.Name, Namespace: pod.Namespace, UID: string(pod.UID)},
		StartTime:  metav1.NewTime(pod.CreatedAt),
		Containers: []statsapi.ContainerStats{},
	}
	var sum []mruntime.Usage
	for _, c := range runningContainers(pod) {
		u, ok := byContainer[c.ID]
		if !ok {
			continue
		}
		key := "c/" + c.ID
		seen[key] = true
		ps.Containers = append(ps.Containers, statsapi.ContainerStats{
			Name:      c.Name,
			StartTime: metav1.NewTime(c.CreatedAt),
			CPU:       p.cpuStats(key, u),
			Memory:    memoryStats(u),
		})
		sum = append(sum, u)
	}
	podUsage, ok := bySandbox[pod.SandboxID]
	if !ok {
		podUsage = sumUsage(sum)
	}
	key := "p/" + pod.SandboxID
	seen[key] = true
	ps.CPU, ps.Memory = p.cpuStats(key, podUsage), memoryStats(podUsage)
	return ps
}

// runningContainers returns the running attempt of every container of pod.
func runningContainers(pod *mruntime.Pod) []*mruntime.Container {
	var out []*mruntime.Container
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if c.State == mruntime.ContainerRunning && pod.Latest(c.Name) == c {
			out = append(out, c)
		}
	}
	return out
}
