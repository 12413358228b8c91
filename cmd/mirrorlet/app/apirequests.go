package app

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// apiRequests counts every request mirrorlet sends to the API server, by
// the verb, resource and subresource the API server sees (list and watch
// apart from get), as the client sends them: what a fleet of agents costs
// the API server (test/bench reads it).
var apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "mirrorlet_api_requests_total",
	Help: "Requests sent to the API server, by verb (get, list, watch, create, patch, update, delete), resource and subresource.",
}, []string{"verb", "resource", "subresource"})

func init() {
	metrics.Registry.MustRegister(apiRequests)
}

// requestInfo classifies requests as the API server does.
var requestInfo = &request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}

// countingTransport counts each request in apiRequests before sending it.
type countingTransport struct{ next http.RoundTripper }

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	verb, resource, sub := "other", "", ""
	if info, err := requestInfo.NewRequestInfo(req); err == nil && info.IsResourceRequest {
		verb, resource, sub = info.Verb, info.Resource, info.Subresource
	}
	apiRequests.WithLabelValues(verb, resource, sub).Inc()
	return c.next.RoundTrip(req)
}

// withRequestCounting returns a copy of cfg whose requests are counted.
func withRequestCounting(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt} })
	return cfg
}
