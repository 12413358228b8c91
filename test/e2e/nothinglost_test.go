package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// An invalid edit made while mirrorlet is stopped: after the restart the
// last good version still runs on containerd, never restarted, and its
// mirror says what is wrong with the file.
func TestBadEditWhileStoppedKeepsRunningPod(t *testing.T) {
	n, _, port, id, before := runningWeb(t)
	n.stop(syscall.SIGTERM)
	bad := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    imagee: typo\n"
	if err := os.WriteFile(filepath.Join(n.manifests, "web.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	n.start()
	var m *corev1.Pod
	eventually(t, time.Minute, "the mirror to report the invalid manifest", func() bool {
		m = n.mirror("web")
		if m == nil {
			return false
		}
		for _, c := range m.Status.Conditions {
			if c.Type == "mirrorlet.io/ManifestValid" && c.Status == corev1.ConditionFalse && strings.Contains(c.Message, "imagee") {
				return true
			}
		}
		return false
	})
	cs := m.Status.ContainerStatuses[0]
	if cs.ContainerID != id || cs.RestartCount != 0 || m.Status.Phase != corev1.PodRunning {
		t.Errorf("after the restart: container %s restartCount %d phase %s, want %s, 0, Running", cs.ContainerID, cs.RestartCount, m.Status.Phase, id)
	}
	if body, err := get(port, "/"); err != nil || body != before {
		t.Errorf("after the restart the server answers %q (%v), want the same server (%q)", body, err, before)
	}
	if pods := n.runtimePods(); len(pods) != 1 {
		t.Errorf("runtime pods %v, want exactly the one that ran", pods)
	}
}

// A symlink that a container left in a volume, pointing out of it, is not
// followed by another container's subPath mount: that container does not
// start, and its mirror says why.
func TestSubPathSymlinkOutOfVolumeIsRefused(t *testing.T) {
	n := startNode(t)
	secret, vol := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(secret, "key"), []byte("node secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(vol, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(vol, "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "inside", "hello"), []byte("inside the volume"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	pod := webPod("sub", port)
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: vol}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data", SubPath: "escape"}}
	n.writeManifest("sub.yaml", pod)
	eventually(t, time.Minute, "the mirror to say the subPath leads out of the volume", func() bool {
		m := n.mirror("sub")
		if m == nil || len(m.Status.ContainerStatuses) == 0 {
			return false
		}
		w := m.Status.ContainerStatuses[0].State.Waiting
		return w != nil && strings.Contains(w.Message, "leads out of the volume")
	})
	if body, err := get(port, "/file?path=/data/key"); err == nil {
		t.Fatalf("the container runs and reads the host's file through the symlink: %q", body)
	}

	// The same mount through a subPath that stays inside works.
	pod.Spec.Containers[0].VolumeMounts[0].SubPath = "inside"
	n.writeManifest("sub.yaml", pod)
	n.waitRunning("sub", 2*time.Minute)
	var body string
	eventually(t, 30*time.Second, "the file inside the volume through the subPath", func() bool {
		var err error
		body, err = get(port, "/file?path=/data/hello")
		return err == nil && body == "inside the volume"
	})
}
