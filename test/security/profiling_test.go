package security

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/test/agenttest"
	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// TestProfilingHandlerNeedsNodesProxy: with the profiling handler enabled,
// /debug/pprof/ on the node API is authorised as the kubelet's: the agent
// asks the API server (SubjectAccessReview, as its own identity) whether
// the caller may get nodes/proxy of this node. A caller allowed only
// nodes/metrics, nodes/stats and nodes/log gets 403; a caller allowed
// nodes/proxy gets a heap profile and a goroutine dump. Both callers
// authenticate with client certificates of the API server's client CA.
func TestProfilingHandlerNeedsNodesProxy(t *testing.T) {
	node := newNodeName("pprof")
	port := nodetest.FreePort(t)
	grantNode(t, "pprof-reader-"+node, node, "nodes/proxy")
	grantNode(t, "pprof-lacking-"+node, node, "nodes/metrics", "nodes/stats", "nodes/log")
	cfg, err := userConfig("mirrorlet:node:"+node, "mirrorlet:nodes")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(env.ControlPlane.APIServer.CertDir, "client-cert-auth-ca.crt")
	agenttest.Start(t, node, agenttest.Config{RestConfig: cfg, Reader: admin, Options: []func(*app.Options){func(o *app.Options) {
		o.NodeIP, o.RootDir = "127.0.0.1", t.TempDir()
		o.NodeAPI = app.NodeAPIOptions{Address: "127.0.0.1", Port: port, ClientCAFile: caFile, EnableProfilingHandler: true}
	}}})
	base := fmt.Sprintf("https://127.0.0.1:%d/debug/pprof/", port)
	lacking, reader := nodeAPIClient(t, "pprof-lacking-"+node), nodeAPIClient(t, "pprof-reader-"+node)

	var code int
	var body []byte
	eventually(t, "the node API refusing the caller without nodes/proxy", func() bool {
		code, body = get(lacking, base+"heap")
		return code == http.StatusForbidden
	})
	want := fmt.Sprintf("Forbidden (user=pprof-lacking-%s, verb=get, resource=nodes, subresource(s)=[proxy])", node)
	if !strings.Contains(string(body), want) {
		t.Errorf("403 body %q, want %q", body, want)
	}
	eventually(t, "the node API serving the caller with nodes/proxy", func() bool {
		code, body = get(reader, base+"heap")
		return code == http.StatusOK
	})
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("heap profile is not a gzipped pprof profile: %v", err)
	}
	if raw, err := io.ReadAll(zr); err != nil || len(raw) == 0 {
		t.Fatalf("heap profile: %d bytes, %v", len(raw), err)
	}
	if code, body = get(reader, base+"goroutine?debug=1"); code != http.StatusOK || !strings.Contains(string(body), "goroutine profile: total") {
		t.Fatalf("GET goroutine?debug=1 with nodes/proxy: %d %.200q", code, body)
	}
	if code, _ = get(lacking, base+"goroutine?debug=1"); code != http.StatusForbidden {
		t.Fatalf("GET goroutine?debug=1 without nodes/proxy: %d, want 403", code)
	}
}

// TestProfilingHandlerOffByDefault: without enableProfilingHandler the
// path answers 405 even to a caller allowed nodes/proxy, as the kubelet's
// does when it is disabled.
func TestProfilingHandlerOffByDefault(t *testing.T) {
	node := newNodeName("nopprof")
	port := nodetest.FreePort(t)
	grantNode(t, "pprof-reader-"+node, node, "nodes/proxy")
	cfg, err := userConfig("mirrorlet:node:"+node, "mirrorlet:nodes")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(env.ControlPlane.APIServer.CertDir, "client-cert-auth-ca.crt")
	agenttest.Start(t, node, agenttest.Config{RestConfig: cfg, Reader: admin, Options: []func(*app.Options){func(o *app.Options) {
		o.NodeIP, o.RootDir = "127.0.0.1", t.TempDir()
		o.NodeAPI = app.NodeAPIOptions{Address: "127.0.0.1", Port: port, ClientCAFile: caFile}
	}}})
	reader := nodeAPIClient(t, "pprof-reader-"+node)
	var code int
	var body []byte
	eventually(t, "the node API answering", func() bool {
		code, body = get(reader, fmt.Sprintf("https://127.0.0.1:%d/debug/pprof/heap", port))
		return code != 0
	})
	if code != http.StatusMethodNotAllowed || !strings.Contains(string(body), "profiling endpoint is disabled.") {
		t.Fatalf("GET /debug/pprof/heap with the handler off: %d %q, want 405", code, body)
	}
}

// grantNode gives user get on the subresources of node (only that Node)
// through a ClusterRole and its binding, removed when the test ends.
func grantNode(t *testing.T, user, node string, resources ...string) {
	t.Helper()
	ctx := t.Context()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: resources, ResourceNames: []string{node}, Verbs: []string{"get"},
	}}}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := admin.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_ = admin.Delete(ctx, binding)
		_ = admin.Delete(ctx, role)
	})
}

// nodeAPIClient returns an HTTPS client presenting user's client
// certificate (signed by the API server's client CA, envtest's AddUser).
func nodeAPIClient(t *testing.T, user string) *http.Client {
	t.Helper()
	cfg, err := userConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, //nolint:gosec // the node API's self-signed certificate is not what is tested
	}}}
}

// get GETs url and returns the status and body; 0 when it did not answer.
func get(c *http.Client, url string) (int, []byte) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, body
}
