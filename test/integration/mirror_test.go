package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/manifest"
)

func TestMirrorHasStaticPodIdentity(t *testing.T) {
	a := startAgent(t, newNodeName("identity"), "", nil)
	start := time.Now()
	a.Write("static-web.yaml", podManifest("static-web", map[string]string{"role": "myrole"}, "nginx:1.27"))
	m := a.WaitMirror("static-web", nil)
	t.Logf("manifest write -> mirror created: %s", time.Since(start))

	node := &corev1.Node{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Name: a.Node}, node); err != nil {
		t.Fatal(err)
	}
	hash := m.Annotations[manifest.AnnotationMirror]
	checks := map[string]bool{
		"name is <name>-<node>":          m.Name == "static-web-"+a.Node,
		"namespace default":              m.Namespace == "default",
		"spec.nodeName":                  m.Spec.NodeName == a.Node,
		"label propagated":               m.Labels["role"] == "myrole",
		"config.source file":             m.Annotations[manifest.AnnotationSource] == "file",
		"config.hash == config.mirror":   hash != "" && m.Annotations[manifest.AnnotationHash] == hash,
		"config.seen is RFC3339Nano":     parses(m.Annotations[manifest.AnnotationSeen]),
		"NoExecute toleration":           hasToleration(m),
		"one controller owner, the Node": len(m.OwnerReferences) == 1 && m.OwnerReferences[0].Kind == "Node" && m.OwnerReferences[0].UID == node.UID && *m.OwnerReferences[0].Controller,
		"no blockOwnerDeletion":          len(m.OwnerReferences) == 1 && m.OwnerReferences[0].BlockOwnerDeletion == nil,
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("%s: not so in %+v", what, m.ObjectMeta)
		}
	}
	rp := a.WaitRunning("static-web", 1)
	if string(rp.UID) != hash {
		t.Errorf("runtime pod UID %q, want the spec hash %q", rp.UID, hash)
	}
	// Selectable by label, and Running with the runtime's container.
	eventually(t, "mirror Running with the runtime's container ID", func() bool {
		var pods corev1.PodList
		if err := k8s.List(context.Background(), &pods, client.MatchingLabels{"role": "myrole"},
			client.MatchingFields{"spec.nodeName": a.Node}); err != nil || len(pods.Items) != 1 {
			return false
		}
		p := pods.Items[0]
		return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 &&
			p.Status.ContainerStatuses[0].ContainerID == "fake://"+rp.Containers[0].ID &&
			p.Status.ContainerStatuses[0].Ready
	})
}

func parses(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

func hasToleration(p *corev1.Pod) bool {
	for _, t := range p.Spec.Tolerations {
		if t.Operator == corev1.TolerationOpExists && t.Effect == corev1.TaintEffectNoExecute && t.Key == "" {
			return true
		}
	}
	return false
}

// A finalizer another client put on the mirror (the API server keeps a
// pod with finalizers even when deleted with grace period 0) is removed:
// the mirror is mirrorlet's alone, and the new one waits for the old.
func TestMirrorRecreatedAfterDeleteWithoutRestart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		grace     *int64
		finalizer bool
	}{
		{"forced", ptrTo[int64](0), false},
		{"graceful", nil, false},
		{"forced-finalizer", ptrTo[int64](0), true},
		{"graceful-finalizer", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := startAgent(t, newNodeName("recreate-"+tc.name), "", nil)
			a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
			old := a.WaitMirror("web", isRunning)
			rp := a.WaitRunning("web", 1)
			starts := a.RT.Starts(rp.UID)
			if tc.finalizer {
				held := old.DeepCopy()
				held.Finalizers = append(held.Finalizers, "example.com/hold")
				if err := k8s.Patch(context.Background(), held, client.MergeFrom(old)); err != nil {
					t.Fatal(err)
				}
				old = held
			}

			start := time.Now()
			opts := &client.DeleteOptions{GracePeriodSeconds: tc.grace}
			if err := k8s.Delete(context.Background(), old, opts); err != nil {
				t.Fatal(err)
			}
			m := a.WaitMirror("web", func(p *corev1.Pod) bool {
				return p.UID != old.UID && p.DeletionTimestamp == nil && isRunning(p)
			})
			t.Logf("mirror deleted -> recreated and Running: %s", time.Since(start))
			if m.Annotations[manifest.AnnotationMirror] != old.Annotations[manifest.AnnotationMirror] {
				t.Errorf("recreated mirror has another hash")
			}
			if got := a.RT.Starts(rp.UID); got != starts {
				t.Errorf("runtime containers started %d times, want %d (deleting a mirror must not restart the pod)", got, starts)
			}
			if p, _ := a.RuntimePod("web"); p.SandboxID != rp.SandboxID {
				t.Errorf("runtime sandbox changed from %s to %s", rp.SandboxID, p.SandboxID)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestManifestRemovedDeletesMirrorAndStopsPod(t *testing.T) {
	a := startAgent(t, newNodeName("remove"), "", nil)
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	a.WaitMirror("web", isRunning)
	a.WaitRunning("web", 1)

	a.Remove("web.yaml")
	a.WaitNoMirror("web")
	eventually(t, "runtime pod stopped", func() bool {
		_, ok := a.RuntimePod("web")
		return !ok
	})
}

func TestLabelOnlyEditPatchesMirrorInPlace(t *testing.T) {
	a := startAgent(t, newNodeName("relabel"), "", nil)
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "a"}, "nginx:1.27"))
	old := a.WaitMirror("web", isRunning)
	rp := a.WaitRunning("web", 1)
	starts := a.RT.Starts(rp.UID)

	start := time.Now()
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "b", "tier": "x"}, "nginx:1.27"))
	m := a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "b" && p.Labels["tier"] == "x" })
	t.Logf("label edit -> mirror patched: %s", time.Since(start))
	if m.UID != old.UID {
		t.Errorf("mirror was recreated (UID %s -> %s), want patched in place", old.UID, m.UID)
	}
	consistently(t, "runtime pod untouched", time.Second, func() bool {
		p, ok := a.RuntimePod("web")
		return ok && p.SandboxID == rp.SandboxID && a.RT.Starts(rp.UID) == starts
	})
}

// An edit through the API of a field mirrorlet set is reverted in place;
// fields others add are theirs (server-side apply) and stay.
func TestAPIEditsToMirrorAreReverted(t *testing.T) {
	a := startAgent(t, newNodeName("revert"), "", nil)
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "myrole", "tier": "x"}, "nginx:1.27"))
	m := a.WaitMirror("web", isRunning)

	patched := m.DeepCopy()
	patched.Labels["role"] = "hijacked"
	delete(patched.Labels, "tier")
	patched.Labels["extra"] = "1"
	patched.Annotations["note"] = "edited"
	if err := k8s.Patch(context.Background(), patched, client.MergeFrom(m)); err != nil {
		t.Fatal(err)
	}
	got := a.WaitMirror("web", func(p *corev1.Pod) bool {
		return p.Labels["role"] == "myrole" && p.Labels["tier"] == "x"
	})
	if got.UID != m.UID {
		t.Errorf("mirror recreated; a metadata edit should be reverted in place")
	}
	if got.Labels["extra"] != "1" || got.Annotations["note"] != "edited" {
		t.Errorf("a label and an annotation the manifest does not set were removed: labels %v, annotations %v", got.Labels, got.Annotations)
	}
}

func TestSpecEditThroughAPIRecreatesMirror(t *testing.T) {
	a := startAgent(t, newNodeName("specedit"), "", nil)
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	m := a.WaitMirror("web", isRunning)
	rp := a.WaitRunning("web", 1)
	starts := a.RT.Starts(rp.UID)

	patched := m.DeepCopy()
	patched.Spec.Containers[0].Image = "evil:1"
	if err := k8s.Patch(context.Background(), patched, client.MergeFrom(m)); err != nil {
		t.Fatal(err)
	}
	a.WaitMirror("web", func(p *corev1.Pod) bool {
		return p.UID != m.UID && p.Spec.Containers[0].Image == "nginx:1.27"
	})
	if a.RT.Starts(rp.UID) != starts {
		t.Errorf("an API edit of the mirror restarted the pod")
	}
}

func TestOrphanMirrorDeletedAndCorrectMirrorAdoptedAtStart(t *testing.T) {
	node := newNodeName("restart")
	dir := t.TempDir()
	first := startAgent(t, node, dir, nil)
	first.Write("keep.yaml", podManifest("keep", nil, "nginx:1.27"))
	first.Write("gone.yaml", podManifest("gone", nil, "nginx:1.27"))
	keep := first.WaitMirror("keep", isRunning)
	first.WaitMirror("gone", isRunning)
	first.Stop()

	// While mirrorlet is down, one manifest goes away.
	first.Remove("gone.yaml")
	second := startAgent(t, node, dir, first.RT)
	second.WaitNoMirror("gone")
	got := second.WaitMirror("keep", isRunning)
	if got.UID != keep.UID {
		t.Errorf("correct mirror was recreated at start (UID %s -> %s), want adopted", keep.UID, got.UID)
	}
	// A mirror from another node is none of our business.
	other := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "default",
			Annotations: map[string]string{manifest.AnnotationMirror: "x"}},
		Spec: corev1.PodSpec{NodeName: "someone-else", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
	if err := k8s.Create(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	consistently(t, "mirror of another node kept", time.Second, func() bool {
		return k8s.Get(context.Background(), client.ObjectKeyFromObject(other), &corev1.Pod{}) == nil
	})
}

func TestMirrorStatusFollowsRuntime(t *testing.T) {
	a := startAgent(t, newNodeName("status"), "", nil)
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	a.WaitMirror("web", isRunning)
	rp := a.WaitRunning("web", 1)

	if err := a.RT.Exit(rp.UID, "web", 1); err != nil {
		t.Fatal(err)
	}
	m := a.WaitMirror("web", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount == 1 && cs[0].State.Running != nil
	})
	last := m.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if last == nil || last.ExitCode != 1 {
		t.Errorf("lastState.terminated = %+v, want exit code 1", last)
	}
}

func TestImagePullFailureIsReported(t *testing.T) {
	a := startAgent(t, newNodeName("pull"), "", nil)
	a.RT.SetImageMissing("missing:1", true)
	a.Write("web.yaml", podManifest("web", nil, "missing:1"))
	m := a.WaitMirror("web", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "ErrImagePull"
	})
	if m.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", m.Status.Phase)
	}
	eventually(t, "ErrImagePull event on the mirror", func() bool {
		var evs corev1.EventList
		if err := k8s.List(context.Background(), &evs, client.InNamespace("default")); err != nil {
			return false
		}
		for _, e := range evs.Items {
			if string(e.InvolvedObject.UID) == m.Annotations["kubernetes.io/config.mirror"] && e.Reason == "ErrImagePull" && e.Type == corev1.EventTypeWarning {
				return true
			}
		}
		return false
	})
}

// TestContainerEventsAreSeriesOfTheirOwn: the Events the mirror
// reconciler records about a container (ErrImagePull here) name it in
// involvedObject.fieldPath, as the pod workers' Events do: two containers
// failing alike give two Events, not one series keeping the first's note.
func TestContainerEventsAreSeriesOfTheirOwn(t *testing.T) {
	a := startAgent(t, newNodeName("pull2"), "", nil)
	a.RT.SetImageMissing("missing:1", true)
	a.RT.SetImageMissing("missing:2", true)
	a.Write("web.yaml", podManifest("web", nil, "missing:1")+"  - name: side\n    image: missing:2\n")
	m := a.WaitMirror("web", func(p *corev1.Pod) bool { return len(p.Status.ContainerStatuses) == 2 })
	for _, c := range []string{"web", "side"} {
		eventually(t, "ErrImagePull event about container "+c, func() bool {
			var evs corev1.EventList
			if err := k8s.List(context.Background(), &evs, client.InNamespace("default")); err != nil {
				return false
			}
			for _, e := range evs.Items {
				if string(e.InvolvedObject.UID) == m.Annotations["kubernetes.io/config.mirror"] && e.Reason == "ErrImagePull" &&
					e.InvolvedObject.FieldPath == "spec.containers{"+c+"}" && strings.Contains(e.Message, "container "+c+":") {
					return true
				}
			}
			return false
		})
	}
}

// A label that an environment variable reads (downward API) is part of what
// the container runs with: editing it replaces the pod. Other label edits
// still patch the mirror in place.
func TestLabelReadByEnvReplacesPod(t *testing.T) {
	a := startAgent(t, newNodeName("envlabel"), "", nil)
	manifest := func(role, tier string) string {
		return podManifest("web", map[string]string{"role": role, "tier": tier}, "nginx:1.27") +
			"    env:\n    - name: ROLE\n      valueFrom: {fieldRef: {fieldPath: \"metadata.labels['role']\"}}\n"
	}
	a.Write("web.yaml", manifest("a", "x"))
	old := a.WaitMirror("web", isRunning)
	oldPod := a.WaitRunning("web", 1)

	a.Write("web.yaml", manifest("a", "y"))
	m := a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["tier"] == "y" })
	if m.UID != old.UID {
		t.Fatalf("an edit of a label no env var reads recreated the mirror")
	}
	if p, ok := a.RuntimePod("web"); !ok || p.UID != oldPod.UID {
		t.Fatalf("an edit of a label no env var reads replaced the pod")
	}

	a.Write("web.yaml", manifest("b", "y"))
	m = a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "b" && isRunning(p) })
	newPod := a.WaitRunning("web", 1)
	if m.UID == old.UID || newPod.UID == oldPod.UID {
		t.Errorf("editing a label that env var ROLE reads kept the pod (mirror UID %s, runtime UID %s): its container still sees the old value",
			m.UID, newPod.UID)
	}
}
