package integration

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestFailedStartUnderNeverIsFailedWithEvent: a container that fails to
// start (StartError) under restartPolicy Never ends the pod Failed on its
// mirror, with a Failed Event recorded on the mirror by the pod worker
// (through the agent's EventSink).
func TestFailedStartUnderNeverIsFailedWithEvent(t *testing.T) {
	a := startAgent(t, newNodeName("starterror"), "", nil)
	a.RT.SetStartFails("broken:1", true)
	a.Write("web.yaml", strings.Replace(podManifest("web", nil, "broken:1"), "spec:\n", "spec:\n  restartPolicy: Never\n", 1))
	m := a.WaitMirror("web", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return p.Status.Phase == corev1.PodFailed && len(cs) == 1 && cs[0].State.Terminated != nil &&
			cs[0].State.Terminated.Reason == "StartError"
	})
	eventually(t, "Failed event on the mirror", func() bool {
		var evs corev1.EventList
		if err := k8s.List(context.Background(), &evs, client.InNamespace("default")); err != nil {
			return false
		}
		for _, e := range evs.Items {
			if string(e.InvolvedObject.UID) == m.Annotations["kubernetes.io/config.mirror"] && e.Reason == "Failed" && e.Type == corev1.EventTypeWarning {
				return true
			}
		}
		return false
	})
	if p, ok := a.RuntimePod("web"); !ok || p.Ready {
		t.Errorf("the sandbox of the Failed pod is not stopped (found %v)", ok)
	}
}
