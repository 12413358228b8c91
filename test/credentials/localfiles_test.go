package credentials

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/mirrorlet/mirrorlet/controllers/podstatus"
)

// TestManifestTurningUnsafe: a manifest edit that is group-writable is not
// read; its last good version keeps running and its mirror says
// why, naming the file. Made safe again, the edit made meanwhile applies.
func TestManifestTurningUnsafe(t *testing.T) {
	node := newNodeName("unsafe")
	a := startAgent(t, node, userConfig(t, "system:node:"+node, "system:nodes"))
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "a"}))
	a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	rp := a.WaitRunning("web", 1)

	// The edit arrives group-writable in one step (renamed into place
	// with its mode set): an edit written safe and then chmodded may be
	// read before the chmod, since manifests are read as soon as they
	// are closed.
	path := filepath.Join(a.Dir, "web.yaml")
	tmp := filepath.Join(a.Dir, ".web.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(podManifest("web", map[string]string{"role": "b"})), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o664); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	m := a.WaitMirror("web", func(p *corev1.Pod) bool {
		c := condition(p, podstatus.ConditionManifestValid)
		return c != nil && c.Status == corev1.ConditionFalse
	})
	msg := condition(m, podstatus.ConditionManifestValid).Message
	if !strings.Contains(msg, path+": unsafe permissions (mode -rw-rw-r--") || m.Labels["role"] != "a" {
		t.Errorf("mirror labels %v, condition %q: want role=a kept and the file, mode and why named", m.Labels, msg)
	}
	checkContainerUntouched(t, a, rp.UID, rp.Containers[0].ID)

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	a.WaitMirror("web", func(p *corev1.Pod) bool {
		c := condition(p, podstatus.ConditionManifestValid)
		return p.Labels["role"] == "b" && (c == nil || c.Status == corev1.ConditionTrue)
	})
}

func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}
