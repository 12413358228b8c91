package credentials

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// recreateModeLog is what mirrorlet logs, once, when it finds that it may
// not patch mirror pods.
const recreateModeLog = "The API server refuses to patch mirror pods"

// TestKubeletIdentityUnderNodeRestriction runs mirrorlet as a kubelet
// would authenticate (system:node:<name> in system:nodes) with the Node
// authorizer and NodeRestriction: nodes may only create and delete pods,
// so label changes must go through delete + create, and the container must
// never notice.
func TestKubeletIdentityUnderNodeRestriction(t *testing.T) {
	ctx := context.Background()
	node := newNodeName("kubelet-id")
	a := startAgent(t, node, userConfig(t, "system:node:"+node, "system:nodes"))
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "a"}))

	first := a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "a" })
	rp := a.WaitRunning("web", 1)
	containerID := rp.Containers[0].ID
	a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	checkNodeAndLease(t, node)

	// A label edit in the manifest reaches the mirror by delete + create.
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "b"}))
	second := a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "b" })
	if second.UID == first.UID {
		t.Fatalf("mirror keeps UID %s: it was patched, which a node may not do", first.UID)
	}
	// A second edit goes straight to recreate; the mode is logged once.
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "c"}))
	third := a.WaitMirror("web", func(p *corev1.Pod) bool {
		return p.Labels["role"] == "c" && p.Status.Phase == corev1.PodRunning
	})
	if n := a.Logs.Count(recreateModeLog); n != 1 {
		t.Errorf("recreate mode logged %d times, want once", n)
	}

	// A deleted mirror returns.
	if err := admin.Delete(ctx, third); err != nil {
		t.Fatal(err)
	}
	fourth := a.WaitMirror("web", func(p *corev1.Pod) bool { return p.UID != third.UID && p.Labels["role"] == "c" })

	// A label edited through the API is reverted, by recreating too.
	edited := fourth.DeepCopy()
	edited.Labels["role"] = "edited"
	if err := admin.Patch(ctx, edited, client.MergeFrom(fourth)); err != nil {
		t.Fatal(err)
	}
	fifth := a.WaitMirror("web", func(p *corev1.Pod) bool { return p.UID != fourth.UID && p.Labels["role"] == "c" })

	// A mirror someone gave a finalizer and force-deleted stays (a node
	// may not remove finalizers) until they remove it; then it returns.
	held := fifth.DeepCopy()
	held.Finalizers = []string{"example.com/hold"}
	if err := admin.Patch(ctx, held, client.MergeFrom(fifth)); err != nil {
		t.Fatal(err)
	}
	recreating := a.Logs.Count("Recreating mirror pod")
	if err := admin.Delete(ctx, held, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	consistently(t, "the held mirror kept until its finalizer goes", 2*time.Second, func() bool {
		p := &corev1.Pod{}
		return admin.Get(ctx, a.Key("web"), p) == nil && p.UID == fifth.UID && p.DeletionTimestamp != nil
	})
	if n := a.Logs.Count("Recreating mirror pod") - recreating; n > 0 {
		t.Errorf("mirrorlet tried %d times to replace a mirror whose finalizer it may not remove", n)
	}
	latest := &corev1.Pod{}
	if err := admin.Get(ctx, a.Key("web"), latest); err != nil {
		t.Fatal(err)
	}
	released := latest.DeepCopy()
	released.Finalizers = nil
	if err := admin.Patch(ctx, released, client.MergeFrom(latest)); err != nil {
		t.Fatal(err)
	}
	a.WaitMirror("web", func(p *corev1.Pod) bool {
		return p.UID != fifth.UID && p.DeletionTimestamp == nil && p.Labels["role"] == "c"
	})

	// The container never noticed any of it.
	checkContainerUntouched(t, a, rp.UID, containerID)
	// Events: a manifest that never loads is reported on the Node.
	a.Write("bad.yaml", "kind: Deployment\n")
	checkEventWritten(t, node)

	// The manifest removed: the pod stops and its mirror is deleted.
	if err := os.Remove(filepath.Join(a.Dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the mirror of a removed manifest deleted", func() bool {
		return apierrors.IsNotFound(admin.Get(ctx, a.Key("web"), &corev1.Pod{}))
	})
	checkNothingElseForbidden(t, a)
}

// checkNothingElseForbidden fails when mirrorlet logged any Forbidden
// answer but the one that switched it to recreating mirrors.
func checkNothingElseForbidden(t *testing.T, a *agent) {
	t.Helper()
	for _, line := range strings.Split(a.Logs.String(), "\n") {
		if strings.Contains(line, "forbidden") && !strings.Contains(line, recreateModeLog) {
			t.Errorf("mirrorlet was refused something as a node: %s", line)
		}
	}
	if os.Getenv("CREDENTIALS_TEST_LOG") != "" {
		t.Log(a.Logs.String())
	}
}

// checkContainerUntouched fails unless the runtime pod still runs its
// first container, started once.
func checkContainerUntouched(t *testing.T, a *agent, uid types.UID, containerID string) {
	t.Helper()
	now, ok := a.RuntimePod("web")
	if !ok || now.UID != uid || len(now.Containers) != 1 {
		t.Fatalf("runtime pod changed: %+v", now)
	}
	c := now.Containers[0]
	if c.ID != containerID || c.State != mruntime.ContainerRunning || a.RT.Starts(uid) != 1 {
		t.Errorf("container %s (was %s) state %s, %d starts: want the first container running, started once",
			c.ID, containerID, c.State, a.RT.Starts(uid))
	}
}

// checkNodeAndLease fails unless mirrorlet registered its Node (Ready) and
// renews its Lease under the node identity.
func checkNodeAndLease(t *testing.T, node string) {
	t.Helper()
	eventually(t, "Node Ready and Lease renewed", func() bool {
		n := &corev1.Node{}
		lease := &coordinationv1.Lease{}
		if admin.Get(context.Background(), types.NamespacedName{Name: node}, n) != nil ||
			admin.Get(context.Background(), types.NamespacedName{Namespace: "kube-node-lease", Name: node}, lease) != nil {
			return false
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return lease.Spec.RenewTime != nil
			}
		}
		return false
	})
}

// checkEventWritten fails unless mirrorlet, as the node, could write an
// Event (the manifest problem report on its Node).
func checkEventWritten(t *testing.T, node string) {
	t.Helper()
	eventually(t, "an Event from mirrorlet about node "+node, func() bool {
		var list eventsv1.EventList
		if err := admin.List(context.Background(), &list, client.InNamespace("default")); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "Node" && e.Regarding.Name == node {
				return true
			}
		}
		return false
	})
}
