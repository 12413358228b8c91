package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// running is one pod as it runs on the node: its ready sandbox and, by
// container name, the ID of its running container.
type running struct {
	uid        string
	sandbox    string
	containers map[string]string
	restarts   map[string]int32
}

// nodeView reads the node through CRI and checks that no static pod runs
// twice: at most one ready sandbox per pod, at most one running attempt of
// each container, and nothing running in a sandbox that is not ready.
func (a *agent) nodeView() (map[string]running, error) {
	out := map[string]running{}
	for _, p := range a.runtimePods() {
		name := strings.TrimSuffix(p.Name, "-"+a.name)
		if !p.Ready {
			if c := runningContainers(p); len(c) > 0 {
				return nil, fmt.Errorf("pod %s: containers %v run in sandbox %s, which is not ready: %w", name, c, p.SandboxID, errRunsTwice)
			}
			continue
		}
		if prev, ok := out[name]; ok {
			return nil, fmt.Errorf("pod %s: ready sandboxes %s and %s: %w", name, prev.sandbox, p.SandboxID, errRunsTwice)
		}
		r := running{uid: string(p.UID), sandbox: p.SandboxID, containers: map[string]string{}, restarts: map[string]int32{}}
		for _, c := range p.Containers {
			if c.State != mruntime.ContainerRunning {
				continue
			}
			if prev, ok := r.containers[c.Name]; ok {
				return nil, fmt.Errorf("pod %s: container %s (%s and %s): %w", name, c.Name, prev, c.ID, errRunsTwice)
			}
			r.containers[c.Name], r.restarts[c.Name] = c.ID, int32(c.Attempt)
		}
		out[name] = r
	}
	return out, nil
}

func runningContainers(p mruntime.Pod) []string {
	var ids []string
	for _, c := range p.Containers {
		if c.State == mruntime.ContainerRunning {
			ids = append(ids, c.Name+"/"+c.ID)
		}
	}
	return ids
}

// converged says whether the node runs exactly want (by pod name, every
// container running) and the API shows exactly that: one mirror per pod
// and no other pod bound to the node, each mirror of the running spec
// (config.mirror = the sandbox's pod UID, the manifest's args), Running
// and ready, naming the running container IDs. It returns what differs.
func (a *agent) converged(want map[string]*corev1.Pod) error {
	node, err := a.nodeView()
	if err != nil {
		return err
	}
	mirrors, err := a.mirrors()
	if err != nil {
		return fmt.Errorf("listing mirrors: %w", err)
	}
	for name := range node {
		if want[name] == nil {
			return fmt.Errorf("pod %s still runs on the node", name)
		}
	}
	for name := range mirrors {
		if want[strings.TrimSuffix(name, "-"+a.name)] == nil {
			return fmt.Errorf("mirror %s is left over", name)
		}
	}
	for name, pod := range want {
		if err := a.podConverged(pod, node[name], mirrors[a.mirrorName(name)]); err != nil {
			return fmt.Errorf("pod %s: %w", name, err)
		}
	}
	return nil
}

func (a *agent) podConverged(pod *corev1.Pod, r running, m corev1.Pod) error {
	if r.sandbox == "" {
		return fmt.Errorf("not running on the node")
	}
	for _, c := range pod.Spec.Containers {
		if r.containers[c.Name] == "" {
			return fmt.Errorf("container %s not running", c.Name)
		}
	}
	if m.Name == "" {
		return fmt.Errorf("no mirror")
	}
	if got := m.Annotations["kubernetes.io/config.mirror"]; got != r.uid {
		return fmt.Errorf("mirror of spec %s, the node runs %s", got, r.uid)
	}
	for i, c := range pod.Spec.Containers {
		if !slices.Equal(m.Spec.Containers[i].Args, c.Args) {
			return fmt.Errorf("mirror shows args %v, the manifest says %v", m.Spec.Containers[i].Args, c.Args)
		}
	}
	if !runningReady(&m) {
		return fmt.Errorf("mirror %s not Running and ready (phase %s)", m.Name, m.Status.Phase)
	}
	for _, cs := range m.Status.ContainerStatuses {
		if id := strings.TrimPrefix(cs.ContainerID, "containerd://"); id != r.containers[cs.Name] {
			return fmt.Errorf("mirror shows container %s as %s, the node runs %s", cs.Name, id, r.containers[cs.Name])
		}
	}
	return nil
}

// eventuallyNil polls check every 100 ms until it returns nil or timeout
// passes, then fails with the last error it returned.
func eventuallyNil(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { last = check(); return last == nil, nil })
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, last)
	}
}
