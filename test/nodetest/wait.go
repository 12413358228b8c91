package nodetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Eventually polls cond every 100 ms until it holds, failing the test when
// timeout passes first. It may be called from a test's cleanup.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// Get fetches http://127.0.0.1:port/path and returns the body, or an error
// when nothing answers or the status is not 200.
func Get(port int, path string) (string, error) {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return string(body), nil
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now,
// never the same one twice in a test binary: the kernel may hand a closed
// port out again at once, and two host-network pods given the same port
// crash-loop.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !givenPorts[port] {
			givenPorts[port] = true
			return port
		}
	}
}

var (
	portsMu    sync.Mutex
	givenPorts = map[int]bool{}
)

// WebPod is a host-network static pod running the test web server (image,
// from test/images) on port.
func WebPod(image, name string, port int, args ...string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"role": "myrole"}},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			Containers: []corev1.Container{{
				Name:  "web",
				Image: image,
				Args:  append([]string{"--port", fmt.Sprint(port)}, args...),
				Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(port)}},
			}},
		},
	}
}
