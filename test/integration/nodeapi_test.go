package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
	"github.com/mirrorlet/mirrorlet/test/agenttest"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func withNodeAPI(t *testing.T, port int) agentOption {
	return func(o *app.Options) {
		o.NodeIP = "127.0.0.1"
		o.RootDir = t.TempDir()
		o.NodeAPI = app.NodeAPIOptions{Address: "127.0.0.1", Port: port, WebhookAuth: true}
	}
}

// TestNodeAdvertisesNodeAPI: the Node says where the node API is
// (--node-ip as InternalIP, the hostname, the port as kubeletEndpoint), as
// the API server needs to proxy kubectl logs there.
func TestNodeAdvertisesNodeAPI(t *testing.T) {
	port := freePort(t)
	a := startAgent(t, newNodeName("nodeapi"), "", nil, withNodeAPI(t, port))
	eventually(t, "node advertising its node API", func() bool {
		n, err := getNode(a.Node)
		return err == nil && n.Status.DaemonEndpoints.KubeletEndpoint.Port == int32(port) &&
			len(n.Status.Addresses) == 2 && n.Status.Addresses[0] == corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "127.0.0.1"} &&
			n.Status.Addresses[1].Type == corev1.NodeHostName && n.Status.Addresses[1].Address != ""
	})
	if code := anonymousGet(t, port, "/healthz"); code != http.StatusUnauthorized {
		t.Fatalf("anonymous GET /healthz: %d, want 401", code)
	}
}

// TestNodeAPIServesWithoutAPIServer: the node API starts while the API
// server is unreachable (requests are refused until it answers).
func TestNodeAPIServesWithoutAPIServer(t *testing.T) {
	unreachable := *cfg
	unreachable.Host = "https://127.0.0.1:1"
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	o := app.Options{RestConfig: &unreachable, NodeName: newNodeName("nodeapi-offline"), PodManifestPath: t.TempDir(),
		Runtime: fake.New(nil), HealthzBindAddress: "0", MetricsBindAddress: "0", Log: zap.New(zap.WriteTo(&agenttest.LogBuffer{}))}
	withNodeAPI(t, port)(&o)
	go func() { done <- app.Run(ctx, o) }()
	eventually(t, "the node API answering", func() bool { return anonymousGet(t, port, "/healthz") == http.StatusUnauthorized })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// anonymousGet calls the node API without credentials; 0 when it does not
// answer.
func anonymousGet(t *testing.T, port int, path string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed, and not what is tested
	}}
	resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d%s", port, path))
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
