package stats

import (
	"encoding/json"
	"net/http"
)

// Handlers serves the stats routes. Each route is an http.Handler.
type Handlers struct {
	// Summary serves GET /stats/summary.
	Summary http.Handler
	// ResourceMetrics serves GET /metrics/resource.
	ResourceMetrics http.Handler
}

// Handlers returns the routes of p.
func (p *Provider) Handlers() *Handlers {
	return &Handlers{
		Summary:         getOnly(http.HandlerFunc(p.serveSummary)),
		ResourceMetrics: getOnly(http.HandlerFunc(p.serveResourceMetrics)),
	}
}

// serveSummary answers the Summary as JSON. The kubelet's
// only_cpu_and_memory parameter changes nothing: there is nothing else.
func (p *Provider) serveSummary(w http.ResponseWriter, r *http.Request) {
	s, err := p.Summary(r.Context())
	if err != nil {
		p.cfg.Log.Error(err, "Computing the stats summary")
		http.Error(w, "Internal Error: "+err.Error(), http.StatusInternalServerError)
		return
	}
	data, err := json.Marshal(s)
	if err != nil {
		http.Error(w, "Internal Error: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

// getOnly refuses methods other than GET (and HEAD) with 405, as the
// kubelet does for its read-only routes.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}
