package urlsource

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/mirrorlet/mirrorlet/manifest/desired"
)

func TestCheckScheme(t *testing.T) {
	for _, tc := range []struct {
		url       string
		allowHTTP bool
		ok        bool
	}{
		{url: "https://pods.example.com/node1", ok: true},
		{url: "http://127.0.0.1:8080/pods", ok: true},
		{url: "http://127.1.2.3/pods", ok: true},
		{url: "http://[::1]:8080/pods", ok: true},
		{url: "http://localhost/pods", ok: true},
		{url: "http://pods.example.com/node1"},
		{url: "http://10.0.0.1/pods"},
		{url: "http://10.0.0.1/pods", allowHTTP: true, ok: true},
		{url: "ftp://127.0.0.1/pods", allowHTTP: true},
	} {
		err := CheckScheme(tc.url, tc.allowHTTP)
		if (err == nil) != tc.ok {
			t.Errorf("CheckScheme(%s, allowHTTP=%v) = %v, want ok=%v", tc.url, tc.allowHTTP, err, tc.ok)
		}
		if err != nil && tc.ok == false && strings.HasPrefix(tc.url, "http:") &&
			!strings.Contains(err.Error(), "--manifest-url-allow-http") {
			t.Errorf("error does not name the way out: %v", err)
		}
	}
}

// TestPlainHTTPToTheNetwork serves a pod over plain HTTP on a non-loopback
// address of this machine: refused unless AllowHTTP.
func TestPlainHTTPToTheNetwork(t *testing.T) {
	ip := nonLoopbackIP(t)
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	ts := httptest.NewUnstartedServer(&server{status: 200, body: pod("plain", "i:1")})
	ts.Listener = l
	ts.Start()
	defer ts.Close()

	_, err = New(Config{URL: ts.URL, NodeName: "n1", Publish: func(desired.Snapshot) {}})
	if err == nil || !strings.Contains(err.Error(), ts.URL) || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("New(%s) = %v, want a refusal naming the URL", ts.URL, err)
	}
	s, rec := newSource(t, Config{URL: ts.URL, AllowHTTP: true})
	s.Fetch(context.Background())
	if got := names(rec.last(t)); got != "plain-n1=i:1/http" {
		t.Fatalf("with AllowHTTP: pods %s", got)
	}
}

func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return ""
}

// TestRedirects follows a redirect on the same host and refuses one to
// another host, over TLS.
func TestRedirects(t *testing.T) {
	// Another host whose certificate the CA bundle trusts too: [::1].
	l, lerr := net.Listen("tcp", "[::1]:0")
	if lerr != nil {
		t.Skipf("no IPv6 loopback for a second host: %v", lerr)
	}
	other := httptest.NewUnstartedServer(&server{status: 200, body: pod("elsewhere", "i:1")})
	other.Listener = l
	other.StartTLS()
	defer other.Close()
	otherURL := other.URL
	mux := http.NewServeMux()
	mux.Handle("/pods", &server{status: 200, body: pod("here", "i:1")})
	mux.Handle("/moved", http.RedirectHandler("/pods", http.StatusFound))
	mux.Handle("/away", http.RedirectHandler(otherURL+"/pods", http.StatusFound))
	ts := httptest.NewTLSServer(mux)
	defer ts.Close()
	ca := writeCA(t, ts, other)

	same, rec := newSource(t, Config{URL: ts.URL + "/moved", CAFile: ca})
	same.Fetch(context.Background())
	if got := names(rec.last(t)); got != "here-n1=i:1/http" {
		t.Fatalf("same-host redirect: pods %s", got)
	}

	away, err := New(Config{URL: ts.URL + "/away", CAFile: ca, NodeName: "n1", Publish: func(desired.Snapshot) {}, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = away.FetchOnce(context.Background())
	from, to := strings.TrimPrefix(ts.URL, "https://"), strings.TrimPrefix(otherURL, "https://")
	if err == nil || !strings.Contains(err.Error(), "from host "+from+" to another host "+to) {
		t.Fatalf("redirect to another host: got %v, want a refusal naming %s and %s", err, from, to)
	}
}

// writeCA writes the servers' certificates as a CA bundle.
func writeCA(t *testing.T, servers ...*httptest.Server) string {
	t.Helper()
	var bundle []byte
	for _, s := range servers {
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})...)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
