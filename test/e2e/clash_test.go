package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// waitNodeEvent waits for an Event on the node's Node with reason and a
// message containing every one of parts.
func (n *node) waitNodeEvent(reason string, parts ...string) {
	n.t.Helper()
	eventually(n.t, time.Minute, fmt.Sprintf("a %s Event %q on node %s", reason, parts, n.name), func() bool {
		var events corev1.EventList
		if err := k8s.List(context.Background(), &events); err != nil {
			return false
		}
		return slices.ContainsFunc(events.Items, func(e corev1.Event) bool {
			return e.InvolvedObject.Kind == "Node" && e.InvolvedObject.Name == n.name && e.Reason == reason &&
				containsAll(e.Message, parts)
		})
	})
}

// TestNewManifestClashingWithRunningPodIsRefused: on containerd, a new file
// that reuses a running pod's name (and sorts before it), and one that
// claims its host port, are refused with an error naming both files; the
// running pod is untouched (same container, restartCount 0, same server)
// and the newcomers never run.
func TestNewManifestClashingWithRunningPodIsRefused(t *testing.T) {
	n, _, port, id, before := runningWeb(t)
	n.writeManifest("0-web.yaml", webPod("web", freePort(t), "--message", "impostor"))
	n.writeManifest("other.yaml", webPod("other", port))
	file := func(name string) string { return filepath.Join(n.manifests, name) }
	n.waitNodeEvent("FailedLoadManifest", file("0-web.yaml"), "pod default/web-"+n.name, "already defined by "+file("web.yaml"))
	n.waitNodeEvent("FailedLoadManifest", file("other.yaml"), fmt.Sprintf("host port %d/TCP", port), "already used by pod default/web-"+n.name,
		file("web.yaml"))
	consistently(t, 3*time.Second, "the running pod untouched and the newcomers not run", func() bool {
		m := n.mirror("web")
		if m == nil || len(m.Status.ContainerStatuses) != 1 || slices.Contains(m.Spec.Containers[0].Args, "impostor") {
			return false
		}
		cs := m.Status.ContainerStatuses[0]
		body, err := get(port, "/")
		pods := n.runtimePods()
		return cs.ContainerID == id && cs.RestartCount == 0 && err == nil && body == before &&
			len(pods) == 1 && strings.HasPrefix(pods[0], n.mirrorName("web")+"/") && n.mirror("other") == nil
	})
}
