package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// hostFilePod is a web server that mounts hostPath at /host (read-only)
// and restarts when restartOnChange says ("" for never).
func hostFilePod(name string, port int, hostPath, restartOnChange string) *corev1.Pod {
	p := webPod(name, port)
	p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
	p.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: hostPath}}}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/host", ReadOnly: true}}
	if restartOnChange != "" {
		p.Annotations = map[string]string{manifest.AnnotationRestartOnChange: restartOnChange}
	}
	return p
}

// attempt returns the attempt number of the running web container of pod
// in the runtime (-1 when none runs): how often it started again.
func (n *node) attempt(pod string) int { return n.runningAttempt(pod, "web") }

// renewByRename writes content to a new file and renames it over path,
// as kubeadm renews a certificate.
func renewByRename(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// renewBySymlinkSwap writes name into a new directory of dir and swaps the
// ..data symlink to it, as the atomic writer (and cert-manager) do; name
// itself is a symlink to ..data/name.
func renewBySymlinkSwap(t *testing.T, dir, name, content string, seq int) {
	t.Helper()
	ts := fmt.Sprintf("..2026_11_24_%d", seq)
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ts, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, name)); os.IsNotExist(err) {
		if err := os.Symlink("..data/"+name, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// serves waits until the server on port shows content for the file path.
func serves(t *testing.T, port int, path, content string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s reading %q on port %d", path, content, port), func() bool {
		body, err := get(port, "/file?path="+path)
		return err == nil && body == content
	})
}

// TestRestartOnHostFileChange: pods that opted in (mirrorlet.io/
// restart-on-change) restart exactly once when a certificate is renewed
// the way kubeadm does it (new file renamed over the old one, mounted as a
// single file) or the way the atomic writer does it (..data symlink swap),
// and read the new content; a pod mounting the same file without the
// annotation is not restarted; a file that disappears restarts nothing
// until it is back with other content; a restart of mirrorlet restarts
// only the pod whose file was renewed while it was stopped, and changes
// are still seen after it.
func TestRestartOnHostFileChange(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	pki, atomic := filepath.Join(dir, "pki"), filepath.Join(dir, "atomic")
	for _, d := range []string{pki, atomic} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	crt := filepath.Join(pki, "apiserver.crt")
	renewByRename(t, crt, "cert-1")
	renewBySymlinkSwap(t, atomic, "tls.crt", "tls-1", 1)

	ports := map[string]int{"renewed": freePort(t), "swapped": freePort(t), "bystander": freePort(t)}
	n.writeManifest("renewed.yaml", hostFilePod("renewed", ports["renewed"], crt, manifest.RestartOnChangeAll))
	n.writeManifest("swapped.yaml", hostFilePod("swapped", ports["swapped"], atomic, filepath.Join(atomic, "tls.crt")))
	n.writeManifest("bystander.yaml", hostFilePod("bystander", ports["bystander"], crt, ""))
	for pod := range ports {
		n.waitRunning(pod, 2*time.Minute)
	}
	serves(t, ports["renewed"], "/host", "cert-1")
	want := map[string]int{"renewed": 0, "swapped": 0, "bystander": 0}
	attemptsAre := func() bool {
		for pod, a := range want {
			if n.attempt(pod) != a {
				return false
			}
		}
		return true
	}

	t.Log("kubeadm-style renewal: a new file renamed over the mounted one")
	renewByRename(t, crt, "cert-2")
	want["renewed"] = 1
	eventually(t, time.Minute, "renewed restarted once", attemptsAre)
	serves(t, ports["renewed"], "/host", "cert-2")
	serves(t, ports["bystander"], "/host", "cert-1") // still the old inode: not restarted
	n.waitEvent("renewed", corev1.EventTypeNormal, "HostFileChanged", crt, "restarting containers web")

	t.Log("atomic-writer renewal: the ..data symlink swapped to a new directory")
	renewBySymlinkSwap(t, atomic, "tls.crt", "tls-2", 2)
	want["swapped"] = 1
	eventually(t, time.Minute, "swapped restarted once", attemptsAre)
	serves(t, ports["swapped"], "/host/tls.crt", "tls-2")

	t.Log("the renewed file disappears: nothing restarts")
	if err := os.Remove(crt); err != nil {
		t.Fatal(err)
	}
	consistently(t, 4*time.Second, "one restart per renewal, none for a missing file", attemptsAre)

	t.Log("the file is back with other content: one restart")
	renewByRename(t, crt, "cert-3")
	want["renewed"] = 2
	eventually(t, time.Minute, "renewed restarted again once", attemptsAre)
	serves(t, ports["renewed"], "/host", "cert-3")

	t.Log("mirrorlet restarts: only the file renewed while it was stopped restarts its pod, once")
	n.stop(syscall.SIGTERM)
	renewByRename(t, crt, "cert-4")
	n.start()
	want["renewed"] = 3
	eventually(t, time.Minute, "renewed restarted once after mirrorlet restarted", attemptsAre)
	serves(t, ports["renewed"], "/host", "cert-4")
	consistently(t, 4*time.Second, "no other restart after mirrorlet restarted", attemptsAre)

	t.Log("changes are still seen after the restart")
	renewBySymlinkSwap(t, atomic, "tls.crt", "tls-3", 3)
	want["swapped"] = 2
	eventually(t, time.Minute, "swapped restarted once after mirrorlet restarted", attemptsAre)
	for pod, a := range want {
		eventually(t, 30*time.Second, fmt.Sprintf("the mirror of %s showing restartCount %d", pod, a), func() bool {
			cs := containerStatus(n.mirror(pod), "web")
			return cs != nil && int(cs.RestartCount) == a && cs.Ready
		})
	}
	if !strings.Contains(n.mirror("swapped").Annotations[manifest.AnnotationRestartOnChange], "tls.crt") {
		t.Errorf("the mirror does not carry the annotation")
	}
}
