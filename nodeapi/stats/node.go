package stats

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// userHZ is the unit of /proc/stat's times: USER_HZ, 100 on every Linux
// architecture Kubernetes runs on.
const userHZ = 100

// nodeStats reads the node's CPU and memory from /proc: CPU time is every
// non-idle time of /proc/stat; memory as the kubelet's root cgroup would
// show it, usage = MemTotal - MemFree and working set = usage - Inactive(file).
func (p *Provider) nodeStats() (*statsapi.NodeStats, error) {
	now := time.Now()
	cpu, boot, err := readProcStat(filepath.Join(p.cfg.ProcDir, "stat"))
	if err != nil {
		return nil, err
	}
	mem, err := readMeminfo(filepath.Join(p.cfg.ProcDir, "meminfo"))
	if err != nil {
		return nil, err
	}
	u := mruntime.Usage{CPUTime: now, UsageCoreNanoSeconds: &cpu, MemoryTime: now}
	usage := sub(mem["MemTotal"], mem["MemFree"])
	workingSet := sub(usage, mem["Inactive(file)"])
	available := mem["MemAvailable"]
	u.UsageBytes, u.WorkingSetBytes = &usage, &workingSet
	ms := memoryStats(u)
	ms.AvailableBytes = &available
	return &statsapi.NodeStats{
		NodeName:  p.cfg.NodeName,
		StartTime: metav1.NewTime(boot),
		CPU:       p.cpuStats("node", u),
		Memory:    ms,
	}, nil
}

// readProcStat returns the non-idle CPU time of all CPUs in nanoseconds
// and the boot time.
func readProcStat(path string) (uint64, time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("reading node CPU time: %w", err)
	}
	var cpu uint64
	var boot time.Time
	found := false
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		f := strings.Fields(s.Text())
		switch {
		case len(f) >= 9 && f[0] == "cpu":
			// user nice system idle iowait irq softirq steal (guest is in user).
			for _, i := range []int{1, 2, 3, 6, 7, 8} {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return 0, time.Time{}, fmt.Errorf("parsing %s: %q: %w", path, s.Text(), err)
				}
				cpu += v
			}
			found = true
		case len(f) == 2 && f[0] == "btime":
			if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				boot = time.Unix(v, 0)
			}
		}
	}
	if !found {
		return 0, time.Time{}, fmt.Errorf("parsing %s: no cpu line", path)
	}
	return cpu * uint64(time.Second/userHZ), boot, nil
}

// readMeminfo returns /proc/meminfo's values in bytes.
func readMeminfo(path string) (map[string]uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading node memory: %w", err)
	}
	out := map[string]uint64{}
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		name, rest, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			v *= 1024
		}
		out[name] = v
	}
	if out["MemTotal"] == 0 {
		return nil, fmt.Errorf("parsing %s: no MemTotal", path)
	}
	return out, nil
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}
