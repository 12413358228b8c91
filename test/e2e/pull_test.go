package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPullLongerThanRuntimeRequestTimeout: an image pull that takes longer
// than --runtime-request-timeout (the kubelet's flag, 2m by default; 2s
// here, so that CI need not wait minutes) completes and the container runs:
// neither the pull nor the image status check after it is cut at the
// request timeout, and the pull is never reported as ErrImagePull.
func TestPullLongerThanRuntimeRequestTimeout(t *testing.T) {
	const requestTimeout, pull = 2 * time.Second, 4 * time.Second
	n := startNode(t, withFlags("--runtime-request-timeout", requestTimeout.String()))
	image := "slowpull-" + n.name
	if err := registry.Copy(t.Context(), "webserver", image); err != nil {
		t.Fatal(err)
	}
	registry.SetSlow(image, pull)
	t.Cleanup(func() { registry.SetSlow(image, 0) })

	port := freePort(t)
	pod := webPod("slowpull", port)
	pod.Spec.Containers[0].Image = registry.Ref(image)
	start := time.Now()
	n.writeManifest("slowpull.yaml", pod)
	var pullFailed string
	eventually(t, 2*time.Minute, "the container running, or a pull error", func() bool {
		cs := containerStatus(n.mirror("slowpull"), "web")
		if cs == nil {
			return false
		}
		if w := cs.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") {
			pullFailed = w.Reason + ": " + w.Message
			return true
		}
		return cs.State.Running != nil
	})
	took := time.Since(start)
	if pullFailed != "" {
		t.Fatalf("a pull of %s with --runtime-request-timeout %s was reported as %s", pull, requestTimeout, pullFailed)
	}
	if took < pull {
		t.Fatalf("running after %s, before the pull could have finished (%s): the image was not pulled slowly", took, pull)
	}
	log, err := os.ReadFile(filepath.Join(n.dir, "mirrorlet.log"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := grepLines(string(log), "Pulling image failed"); len(lines) > 0 {
		t.Errorf("mirrorlet logged a failed pull: %s", strings.Join(lines, "\n"))
	}
	t.Logf("a %s pull with a %s runtime request timeout: running after %s", pull, requestTimeout, took.Round(100*time.Millisecond))
}
