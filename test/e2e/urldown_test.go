package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// serveManifest serves pod's manifest at http://127.0.0.1:PORT/pods until
// the returned function stops the server.
func serveManifest(t *testing.T, body []byte) (url string, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(body)
	})}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("manifest URL server: %v", err)
		}
	}()
	stop = func() { _ = srv.Close() }
	t.Cleanup(stop)
	return "http://" + l.Addr().String() + "/pods", stop
}

// stopRuntimePods stops and removes the node's sandboxes behind
// mirrorlet's back: the cleanup of pods whose source is gone.
func (n *node) stopRuntimePods() {
	pods, err := nodeRuntime.ListPods(context.Background())
	if err != nil {
		n.t.Errorf("listing runtime pods: %v", err)
		return
	}
	for _, p := range pods {
		if strings.HasSuffix(p.Name, "-"+n.name) {
			if err := nodeRuntime.StopPod(context.Background(), p.SandboxID, 0); err != nil {
				n.t.Errorf("stopping %s: %v", p.Name, err)
			}
		}
	}
}

// TestManifestURLDownAtBootRunsLastGoodPods: mirrorlet stopped, its
// manifest URL stopped too (connection refused) and the mirror deleted
// meanwhile: started again, mirrorlet runs the pods of the last good fetch,
// kept on disk. The pod is never restarted (same container, restartCount
// 0, same server) and its mirror is made again.
func TestManifestURLDownAtBootRunsLastGoodPods(t *testing.T) {
	port := freePort(t)
	body, err := yaml.Marshal(webPod("fromurl", port))
	if err != nil {
		t.Fatal(err)
	}
	url, stopURL := serveManifest(t, body)
	n := startNode(t, withFlags("--manifest-url", url, "--http-check-frequency", "1s"))
	t.Cleanup(func() {
		n.stop(syscall.SIGTERM)
		n.stopRuntimePods()
	})
	m := n.waitRunning("fromurl", 2*time.Minute)
	id := m.Status.ContainerStatuses[0].ContainerID
	before := answer(t, port, "/")
	sandboxes := n.runtimePods()

	n.stop(syscall.SIGTERM)
	stopURL()
	if resp, err := http.Get(url); err == nil {
		_ = resp.Body.Close()
		t.Fatal("the manifest URL still answers")
	}
	if err := k8s.Delete(context.Background(), m, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the mirror deleted", func() bool {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(m), m.DeepCopy())
		return apierrors.IsNotFound(err)
	})
	n.start()
	again := n.waitRunning("fromurl", time.Minute)
	if cs := again.Status.ContainerStatuses[0]; cs.ContainerID != id || cs.RestartCount != 0 {
		t.Errorf("after the restart: container %s restartCount %d, want %s, 0", cs.ContainerID, cs.RestartCount, id)
	}
	consistently(t, 3*time.Second, "the last good pod running, unrestarted, with its mirror", func() bool {
		m := n.mirror("fromurl")
		got, err := get(port, "/")
		pods := n.runtimePods()
		return m != nil && m.Status.ContainerStatuses[0].ContainerID == id && err == nil && got == before &&
			len(pods) == 1 && pods[0] == sandboxes[0]
	})
	log, err := os.ReadFile(filepath.Join(n.dir, "mirrorlet.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(grepLines(string(log), "Manifest URL unusable at start; running the pods of the last good fetch")) == 0 {
		t.Error("mirrorlet did not say it runs the last good pods of the manifest URL")
	}
}
