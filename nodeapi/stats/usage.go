package stats

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// cpuStats returns the CPU figures of u, filling usageNanoCores from the
// previous sample under key when the runtime did not report it.
func (p *Provider) cpuStats(key string, u mruntime.Usage) *statsapi.CPUStats {
	if u.UsageCoreNanoSeconds == nil && u.UsageNanoCores == nil {
		return nil
	}
	return &statsapi.CPUStats{
		Time:                 metav1.NewTime(u.CPUTime),
		UsageCoreNanoSeconds: u.UsageCoreNanoSeconds,
		UsageNanoCores:       p.nanoCores(key, u),
	}
}

// nanoCores is the runtime's rate if it gave one, else the rate between
// the previous sample under key and this one, as the kubelet's CRI stats
// provider computes it. The first sample, and one after a counter reset,
// have no rate; a sample no newer than the previous gets the previous rate.
func (p *Provider) nanoCores(key string, u mruntime.Usage) *uint64 {
	if u.UsageNanoCores != nil {
		v := *u.UsageNanoCores
		return &v
	}
	if u.UsageCoreNanoSeconds == nil {
		return nil
	}
	total := *u.UsageCoreNanoSeconds
	p.mu.Lock()
	defer p.mu.Unlock()
	prev, ok := p.cpu[key]
	if ok && total >= prev.total && !u.CPUTime.After(prev.at) {
		return copyPtr(prev.nanoCores)
	}
	next := cpuSample{at: u.CPUTime, total: total}
	if ok && total >= prev.total {
		rate := uint64(float64(total-prev.total) / float64(u.CPUTime.Sub(prev.at).Nanoseconds()) * 1e9)
		next.nanoCores = &rate
	}
	p.cpu[key] = next
	return copyPtr(next.nanoCores)
}

// forget drops the samples of containers, pods (and so on) not in seen.
func (p *Provider) forget(seen map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.cpu {
		if !seen[k] {
			delete(p.cpu, k)
		}
	}
}

func memoryStats(u mruntime.Usage) *statsapi.MemoryStats {
	if u.WorkingSetBytes == nil && u.UsageBytes == nil {
		return nil
	}
	return &statsapi.MemoryStats{
		Time:            metav1.NewTime(u.MemoryTime),
		WorkingSetBytes: u.WorkingSetBytes,
		UsageBytes:      u.UsageBytes,
	}
}

// sumUsage adds the figures of a pod's containers: the pod's own when the
// runtime has no sandbox stats. A figure is present if any container has it.
func sumUsage(us []mruntime.Usage) mruntime.Usage {
	var s mruntime.Usage
	for _, u := range us {
		s.UsageCoreNanoSeconds = add(s.UsageCoreNanoSeconds, u.UsageCoreNanoSeconds)
		s.UsageNanoCores = add(s.UsageNanoCores, u.UsageNanoCores)
		s.WorkingSetBytes = add(s.WorkingSetBytes, u.WorkingSetBytes)
		s.UsageBytes = add(s.UsageBytes, u.UsageBytes)
		if u.CPUTime.After(s.CPUTime) {
			s.CPUTime = u.CPUTime
		}
		if u.MemoryTime.After(s.MemoryTime) {
			s.MemoryTime = u.MemoryTime
		}
	}
	return s
}

func add(a, b *uint64) *uint64 {
	switch {
	case b == nil:
		return a
	case a == nil:
		return copyPtr(b)
	default:
		v := *a + *b
		return &v
	}
}

func copyPtr(p *uint64) *uint64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
