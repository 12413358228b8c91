package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// webPod is a host-network static pod running the test web server on port.
func webPod(name string, port int, args ...string) *corev1.Pod {
	return nodetest.WebPod(registry.Ref("webserver"), name, port, args...)
}

// TestSeedWalkthrough is the walkthrough a new user follows: a web server
// static pod from a manifest file, its mirror in kubectl, the mirror
// deleted and back while the server never stops, the container killed on
// the node and restarted, the manifest moved out and back.
func TestSeedWalkthrough(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	n.writeManifest("static-web.yaml", webPod("static-web", port, "--message", "hello from a static pod"))

	m := n.waitRunning("static-web", 2*time.Minute)
	out := kubectlOut(t, "get", "pods", "-l", "role=myrole", "--field-selector", "spec.nodeName="+n.name)
	if !strings.Contains(out, n.mirrorName("static-web")) || !strings.Contains(out, "Running") {
		t.Fatalf("kubectl get pods does not show %s Running:\n%s", n.mirrorName("static-web"), out)
	}
	eventually(t, 30*time.Second, "the server answering on the node", func() bool {
		body, err := get(port, "/")
		return err == nil && strings.Contains(body, "hello from a static pod")
	})
	firstBody, _ := get(port, "/")

	// Deleting the mirror never stops the pod; the mirror comes back.
	kubectlOut(t, "delete", "pod", n.mirrorName("static-web"), "--wait=false")
	eventually(t, 30*time.Second, "the mirror to be recreated", func() bool {
		if _, err := get(port, "/"); err != nil {
			t.Fatalf("the server stopped answering after the mirror was deleted: %v", err)
		}
		now := n.mirror("static-web")
		return now != nil && now.UID != m.UID && now.DeletionTimestamp == nil
	})
	if body, err := get(port, "/"); err != nil || body != firstBody {
		t.Fatalf("the server changed after the mirror was deleted (same pid expected): %q then %q (%v)", firstBody, body, err)
	}
	m = n.waitRunning("static-web", 30*time.Second)
	if rc := m.Status.ContainerStatuses[0].RestartCount; rc != 0 {
		t.Fatalf("restartCount = %d after deleting the mirror, want 0", rc)
	}

	// The container is killed on the node: it is restarted, restartCount goes up.
	id := containerID(m.Status.ContainerStatuses[0].ContainerID)
	ctr(t, "tasks", "kill", "-s", "SIGKILL", id)
	eventually(t, time.Minute, "restartCount 1 and the server back", func() bool {
		m = n.mirror("static-web")
		if m == nil || len(m.Status.ContainerStatuses) == 0 {
			return false
		}
		cs := m.Status.ContainerStatuses[0]
		_, err := get(port, "/")
		return cs.RestartCount == 1 && cs.Ready && err == nil
	})
	cs := m.Status.ContainerStatuses[0]
	if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 137 {
		t.Fatalf("lastState = %+v, want terminated with exit code 137", cs.LastTerminationState)
	}
	if containerID(cs.ContainerID) == id {
		t.Fatalf("containerID unchanged after the restart")
	}

	// Manifest moved out: the container stops and the mirror goes.
	parked := filepath.Join(n.dir, "static-web.yaml")
	if err := os.Rename(filepath.Join(n.manifests, "static-web.yaml"), parked); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the server to stop, the mirror and the sandbox to go", func() bool {
		_, err := get(port, "/")
		return err != nil && n.mirror("static-web") == nil && len(n.runtimePods()) == 0
	})
	// The pod's logs and data on the node go with it (removed by the pod's
	// worker once the sandbox is gone).
	for _, dir := range []string{n.logs, filepath.Join(n.root, "pods")} {
		eventually(t, 30*time.Second, dir+" empty after the pod stopped", func() bool {
			entries, err := os.ReadDir(dir)
			return err == nil && len(entries) == 0
		})
	}

	// Moved back: both return.
	if err := os.Rename(parked, filepath.Join(n.manifests, "static-web.yaml")); err != nil {
		t.Fatal(err)
	}
	n.waitRunning("static-web", time.Minute)
	eventually(t, 30*time.Second, "the server answering again", func() bool {
		_, err := get(port, "/")
		return err == nil
	})
}

// TestMirrorStatusShowsTheNode checks the mirror's status the way a user
// reads it: node, host IP, pod IP of a host-network pod, image.
func TestMirrorStatusShowsTheNode(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	n.writeManifest("web.yaml", webPod("web", port))
	m := n.waitRunning("web", 2*time.Minute)
	if m.Spec.NodeName != n.name {
		t.Errorf("spec.nodeName = %q, want %q", m.Spec.NodeName, n.name)
	}
	if m.Status.PodIP == "" || m.Status.PodIP != m.Status.HostIP {
		t.Errorf("host-network pod: podIP %q, hostIP %q; want both the node's IP", m.Status.PodIP, m.Status.HostIP)
	}
	cs := m.Status.ContainerStatuses[0]
	if cs.Image != registry.Ref("webserver") || !strings.HasPrefix(cs.ImageID, "sha256:") && !strings.Contains(cs.ImageID, "@sha256:") {
		t.Errorf("image %q imageID %q; want the manifest's image and its digest", cs.Image, cs.ImageID)
	}
	if !strings.HasPrefix(cs.ContainerID, "containerd://") {
		t.Errorf("containerID %q, want containerd://...", cs.ContainerID)
	}
	if cs.State.Running == nil || cs.Started == nil || !*cs.Started {
		t.Errorf("state %+v started %v, want running and started", cs.State, cs.Started)
	}
	var node corev1.Node
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: n.name}, &node); err != nil {
		t.Fatal(err)
	}
	if v := node.Status.NodeInfo.ContainerRuntimeVersion; v != runtimeVersion {
		t.Errorf("nodeInfo.containerRuntimeVersion = %q, want the runtime's own %q", v, runtimeVersion)
	}
}
