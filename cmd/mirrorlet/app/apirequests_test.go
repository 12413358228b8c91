package app

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/rest"
)

func TestRequestCountingByVerb(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	cfg := withRequestCounting(&rest.Config{Host: srv.URL})
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path        string
		verb, resource, sub string
	}{
		{"GET", "/api/v1/namespaces/default/pods?watch=true", "watch", "pods", ""},
		{"GET", "/api/v1/namespaces/default/pods", "list", "pods", ""},
		{"GET", "/api/v1/namespaces/default/pods/p", "get", "pods", ""},
		{"PATCH", "/api/v1/namespaces/default/pods/p/status", "patch", "pods", "status"},
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n", "update", "leases", ""},
		{"GET", "/healthz", "other", "", ""},
	} {
		c := apiRequests.WithLabelValues(tc.verb, tc.resource, tc.sub)
		before := value(t, c)
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := value(t, c) - before; got != 1 {
			t.Errorf("%s %s: counted %v times as %s %s/%s, want 1", tc.method, tc.path, got, tc.verb, tc.resource, tc.sub)
		}
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	m := &dto.Metric{}
	if err := c.Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
