package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	healthAddr, metricsAddr := freeAddr(t), freeAddr(t)
	a := startAgent(t, newNodeName("health"), "", nil, func(o *app.Options) {
		o.HealthzBindAddress, o.MetricsBindAddress = healthAddr, metricsAddr
	})
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	a.WaitMirror("web", isRunning)
	eventually(t, "/healthz ok", func() bool { code, _ := httpGet("http://" + healthAddr + "/healthz"); return code == 200 })
	eventually(t, "/readyz ok", func() bool { code, _ := httpGet("http://" + healthAddr + "/readyz"); return code == 200 })

	a.RT.SetUnreachable(true)
	eventually(t, "/readyz fails while the runtime is unreachable", func() bool {
		code, body := httpGet("http://" + healthAddr + "/readyz")
		return code == http.StatusInternalServerError && strings.Contains(body, "runtime")
	})
	a.RT.SetUnreachable(false)
	eventually(t, "/readyz ok again", func() bool { code, _ := httpGet("http://" + healthAddr + "/readyz"); return code == 200 })

	_, body := httpGet(fmt.Sprintf("http://%s/metrics", metricsAddr))
	if !strings.Contains(body, `mirrorlet_mirror_writes_total{operation="create",result="ok"}`) {
		t.Errorf("metrics lack mirrorlet_mirror_writes_total for creates:\n%.2000s", body)
	}
}
