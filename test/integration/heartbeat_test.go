package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// reconciles returns controller-runtime's count of reconciles of the
// named controller in this process (every agent's controller of that name;
// the tests of this package run one agent at a time).
func reconciles(t *testing.T, controller string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// TestNodeHeartbeatDoesNotWakeMirrors: Node status heartbeats (here ten,
// each seen by mirrorlet's node controller) reconcile no mirror.
func TestNodeHeartbeatDoesNotWakeMirrors(t *testing.T) {
	ctx := context.Background()
	a := startAgent(t, newNodeName("heartbeat"), "", nil)
	for i := range 3 {
		a.Write(fmt.Sprintf("web%d.yaml", i), podManifest(fmt.Sprintf("web%d", i), nil, "nginx:1.27"))
	}
	for i := range 3 {
		a.WaitMirror(fmt.Sprintf("web%d", i), isRunning)
	}
	before, stable := -1.0, 0
	eventually(t, "mirror reconciles settled (none for 10 polls)", func() bool {
		n := reconciles(t, "mirror")
		if n != before {
			before, stable = n, 0
		}
		stable++
		return stable > 10
	})
	for i := range 10 {
		nodeSeen := reconciles(t, "node")
		heartbeat(t, ctx, a.Node, i)
		eventually(t, "the node controller sees the heartbeat", func() bool { return reconciles(t, "node") > nodeSeen })
	}
	consistently(t, "no mirror reconciled", time.Second, func() bool { return reconciles(t, "mirror") == before })
	t.Logf("mirror reconciles during 10 heartbeats with 3 mirrors: %v", reconciles(t, "mirror")-before)
}

// heartbeat moves the Ready condition's lastHeartbeatTime forward, as a
// node agent's status heartbeat does.
func heartbeat(t *testing.T, ctx context.Context, node string, i int) {
	t.Helper()
	n := &corev1.Node{}
	if err := k8s.Get(ctx, types.NamespacedName{Name: node}, n); err != nil {
		t.Fatal(err)
	}
	patched := n.DeepCopy()
	for j := range patched.Status.Conditions {
		c := &patched.Status.Conditions[j]
		if c.Type == corev1.NodeReady {
			c.LastHeartbeatTime = metav1.NewTime(c.LastHeartbeatTime.Add(time.Duration(i+1) * time.Second))
		}
	}
	if err := k8s.Status().Patch(ctx, patched, client.MergeFrom(n)); err != nil {
		t.Fatal(err)
	}
}
