package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
)

// TestMirrorNameTakenIsReported: a pod that holds a mirror's name and is
// not that mirror (here: bound to another node, so outside mirrorlet's
// cache) is reported with an Event on the Node and in `mirrorlet status`
// (/status); the static pod runs; once that pod is gone, the mirror is
// created.
func TestMirrorNameTakenIsReported(t *testing.T) {
	ctx := context.Background()
	node := newNodeName("taken")
	squatter := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-" + node, Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: "elsewhere", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
	if err := k8s.Create(ctx, squatter); err != nil {
		t.Fatal(err)
	}
	healthAddr := freeAddr(t)
	writes, counting := countPodWrites(t)
	a := startAgent(t, node, "", nil, counting, func(o *app.Options) { o.HealthzBindAddress = healthAddr })
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	a.WaitRunning("web", 1)

	waitNodeEvent(t, node, "FailedCreateMirrorPod", "already exists and is not a mirror pod (bound to node elsewhere)")
	eventually(t, "mirrorlet status reports the name taken", func() bool {
		_, body := httpGet("http://" + healthAddr + "/status")
		var rep app.StatusReport
		if json.Unmarshal([]byte(body), &rep) != nil || len(rep.Pods) != 1 {
			return false
		}
		return strings.HasPrefix(rep.Pods[0].Mirror, "name taken: ") && strings.Contains(rep.Pods[0].Mirror, string(squatter.UID))
	})
	t.Logf("pod writes while the name is taken: %s", writes)
	if got := &(corev1.Pod{}); k8s.Get(ctx, a.Key("web"), got) != nil || got.UID != squatter.UID || got.Spec.NodeName != "elsewhere" {
		t.Errorf("the pod holding the name was changed: %+v", got.ObjectMeta)
	}

	// No kubelet runs on "elsewhere" to finish a graceful delete.
	if err := k8s.Delete(ctx, squatter, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	a.WaitMirror("web", func(p *corev1.Pod) bool { return p.UID != squatter.UID && isRunning(p) })
}

// TestMirrorNameTakenOnTheNodeIsReported: a pod bound to mirrorlet's node
// under a mirror's name (in mirrorlet's cache, not a mirror) is reported
// the same way, rejected as any pod the scheduler binds there, and never
// replaced by mirrorlet.
func TestMirrorNameTakenOnTheNodeIsReported(t *testing.T) {
	ctx := context.Background()
	a := startAgent(t, newNodeName("taken-here"), "", nil)
	a.Write("other.yaml", podManifest("other", nil, "nginx:1.27"))
	a.WaitMirror("other", isRunning)
	squatter := boundPod("web-"+a.Node, a.Node)
	if err := k8s.Create(ctx, squatter); err != nil {
		t.Fatal(err)
	}
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	a.WaitRunning("web", 1)
	waitNodeEvent(t, a.Node, "FailedCreateMirrorPod", "already exists and is not a mirror pod (bound to node "+a.Node+")")
	got := a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if got.UID != squatter.UID {
		t.Errorf("the pod holding the name was replaced")
	}
}
