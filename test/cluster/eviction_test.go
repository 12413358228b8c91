package cluster

import (
	"fmt"
	"maps"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// TestUnreachableNodeKeepsItsMirrors stops mirrorlet for longer than the
// eviction timeout. The node lifecycle controller marks the Node
// unreachable and taints it NoExecute; taint-based eviction deletes a plain
// pod bound to it (the control: eviction does run for this node), but the
// mirrors tolerate the taint and stay, with the same UIDs. When mirrorlet
// is back, the Node is Ready again and its containers never restarted.
//
// A second mirrorlet (fake runtime) keeps its Node Ready meanwhile: with
// every Node of the zone NotReady the controller stops evicting altogether
// (full disruption), and the test would prove nothing.
func TestUnreachableNodeKeepsItsMirrors(t *testing.T) {
	startNode(t, "", true)
	n := startNode(t, "", false)
	pods := []string{"evict-a", "evict-b"}
	for _, p := range pods {
		n.WriteManifest(p+".yaml", webPod(p))
	}
	before := waitMirrorsRunning(t, n, 2*time.Minute, pods...)

	n.Stop(syscall.SIGTERM)
	control := boundPod(t, "evict-control", n.Name())
	waitTaint(t, n.Name(), corev1.TaintNodeUnreachable, 2*nodeMonitorGracePeriod)
	nodetest.Eventually(t, time.Minute, "taint-based eviction of the control pod", func() bool {
		p := getPod(t, "default", control.Name)
		return p == nil || p.UID != control.UID || p.DeletionTimestamp != nil
	})
	for _, p := range pods {
		m := getPod(t, "default", before[p].Name)
		if m == nil || m.UID != before[p].UID || m.DeletionTimestamp != nil {
			t.Errorf("mirror %s evicted from the unreachable node (deleted by %v)",
				before[p].Name, deleters(t, "pods", "default", before[p].Name))
		}
	}
	// The node lifecycle controller marks the pods of an unreachable node
	// NotReady (pods/status, which the read-only-mirrors policy allows).
	waitReadyCondition(t, before, corev1.ConditionFalse)

	n.Start()
	after := waitMirrorsRunning(t, n, time.Minute, pods...)
	// mirrorlet sets Ready again: it compares with the mirror's status in
	// the API, not with what it wrote last.
	waitReadyCondition(t, before, corev1.ConditionTrue)
	for _, p := range pods {
		if after[p].UID != before[p].UID || !maps.Equal(containers(t, before[p]), containers(t, after[p])) {
			t.Errorf("%s: mirror %s with containers %v before, %s with %v after", p,
				before[p].UID, containers(t, before[p]), after[p].UID, containers(t, after[p]))
		}
	}
	waitTaint(t, n.Name(), "", time.Minute)
}

// boundPod creates, as the admin, a pod bound to node without tolerations
// of its own (the API server gives it defaultTolerationSeconds for
// not-ready and unreachable), and deletes it when the test ends.
func boundPod(t *testing.T, name, node string) *corev1.Pod {
	t.Helper()
	p := webPod(name)
	p.Namespace = "default"
	p.Spec.NodeName = node
	if err := admin.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(t.Context(), p, client.GracePeriodSeconds(0)) })
	for _, tol := range p.Spec.Tolerations {
		if tol.Key == corev1.TaintNodeUnreachable && (tol.TolerationSeconds == nil || *tol.TolerationSeconds != defaultTolerationSeconds) {
			t.Fatalf("control pod has toleration %v, want %ds from the API server", tol, defaultTolerationSeconds)
		}
	}
	return p
}

// waitTaint waits until node has a NoExecute taint key (none when key is
// empty).
func waitTaint(t *testing.T, name, key string, timeout time.Duration) {
	t.Helper()
	nodetest.Eventually(t, timeout, fmt.Sprintf("node %s NoExecute taint %q", name, key), func() bool {
		node := &corev1.Node{}
		if err := admin.Get(t.Context(), client.ObjectKey{Name: name}, node); err != nil {
			return false
		}
		var keys []string
		for _, taint := range node.Spec.Taints {
			if taint.Effect == corev1.TaintEffectNoExecute {
				keys = append(keys, taint.Key)
			}
		}
		if key == "" {
			return len(keys) == 0
		}
		return len(keys) == 1 && keys[0] == key
	})
}

// waitReadyCondition waits until the Ready condition of every mirror is
// status.
func waitReadyCondition(t *testing.T, mirrors map[string]*corev1.Pod, status corev1.ConditionStatus) {
	t.Helper()
	nodetest.Eventually(t, time.Minute, "mirrors' Ready condition "+string(status), func() bool {
		for _, m := range mirrors {
			p := getPod(t, m.Namespace, m.Name)
			if p == nil || podCondition(p, corev1.PodReady) != status {
				return false
			}
		}
		return true
	})
}

func podCondition(p *corev1.Pod, ct corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == ct {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}
