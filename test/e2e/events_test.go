package e2e

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestContainerEventsOrPolling: on containerd 2.x mirrorlet follows the
// CRI container event stream: a container killed behind its back is
// reported to the pod engine by an event, and the container is restarted.
// On containerd 1.6 (no event stream) the runtime cache's relist, the only
// lister of the runtime, notices the same kill (no event is counted). The
// Node shows the runtime's real version either way.
func TestContainerEventsOrPolling(t *testing.T) {
	mport := freePort(t)
	n := startNode(t, withFlags("--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", mport)))
	port := freePort(t)
	n.writeManifest("web.yaml", webPod("web", port))
	m := n.waitRunning("web", 2*time.Minute)
	id := containerID(m.Status.ContainerStatuses[0].ContainerID)
	checkRuntimeVersion(t, n)

	streaming := 1.0
	if containerd16 {
		streaming = 0
	}
	eventually(t, 30*time.Second, fmt.Sprintf("mirrorlet_runtime_events_streaming %v", streaming), func() bool {
		v, ok := metric(t, mport, "mirrorlet_runtime_events_streaming")
		return ok && v == streaming
	})
	changes := func(src string) float64 {
		v, _ := metric(t, mport, `mirrorlet_runtime_pod_changes_total{source="`+src+`"}`)
		return v
	}
	before := changes("event")

	ctr(t, "tasks", "kill", "-s", "SIGKILL", id)
	killed := time.Now()
	if !containerd16 {
		eventually(t, 30*time.Second, "the kill reported by an event", func() bool { return changes("event") > before })
		t.Logf("runtime %s: the kill was reported by an event %s after ctr returned (metrics read every 100ms)",
			runtimeVersion, time.Since(killed).Round(time.Millisecond))
	}
	eventually(t, time.Minute, "the killed container restarted", func() bool {
		m = n.mirror("web")
		_, err := get(port, "/")
		return m != nil && len(m.Status.ContainerStatuses) == 1 && m.Status.ContainerStatuses[0].RestartCount == 1 && err == nil
	})
	t.Logf("runtime %s: killed container restarted and answering %s after ctr returned", runtimeVersion, time.Since(killed).Round(time.Millisecond))
	if got := changes("event"); containerd16 && got != before {
		t.Errorf("%v changes reported by events while the runtime has no event stream", got-before)
	}
	if _, ok := metric(t, mport, `mirrorlet_runtime_pod_changes_total{source="poll"}`); ok {
		t.Error("changes reported by polling: only the runtime cache lists the runtime")
	}
}

// withFlags adds mirrorlet flags after (and so overriding) the suite's.
func withFlags(flags ...string) nodeOption {
	return func(n *node) { n.extraFlags = append(n.extraFlags, flags...) }
}

func checkRuntimeVersion(t *testing.T, n *node) {
	t.Helper()
	want := "containerd://v2."
	if containerd16 {
		want = "containerd://1.6."
	}
	if !strings.HasPrefix(runtimeVersion, want) {
		t.Fatalf("the suite's containerd is %s, want %s* (MIRRORLET_CONTAINERD=%q)", runtimeVersion, want, map[bool]string{true: "1.6"}[containerd16])
	}
	var node corev1.Node
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: n.name}, &node); err != nil {
		t.Fatal(err)
	}
	if v := node.Status.NodeInfo.ContainerRuntimeVersion; v != runtimeVersion {
		t.Errorf("nodeInfo.containerRuntimeVersion = %q, want %q", v, runtimeVersion)
	}
}

// metric reads one sample (name with its labels, as exposed) from the
// mirrorlet's /metrics on port; ok is false when it is not there.
func metric(t *testing.T, port int, sample string) (float64, bool) {
	t.Helper()
	body, err := get(port, "/metrics")
	if err != nil {
		t.Logf("reading metrics: %v", err)
		return 0, false
	}
	s := bufio.NewScanner(strings.NewReader(body))
	for s.Scan() {
		rest, ok := strings.CutPrefix(s.Text(), sample+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}
