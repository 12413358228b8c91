package nodeapi

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// pprofBasePath is where the kubelet serves Go's profiles.
const pprofBasePath = "/debug/pprof/"

// profilingHandler serves Go's profiles under /debug/pprof/ as the
// kubelet's InstallProfilingHandler does, when enabled; else it answers
// 405 "profiling endpoint is disabled." as the kubelet does. Either way
// the path is authorised as nodes/proxy (see Attributes), like every path
// without a subresource of its own.
func (s *Server) profilingHandler() http.Handler {
	if !s.cfg.EnableProfilingHandler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "profiling endpoint is disabled.", http.StatusMethodNotAllowed)
		})
	}
	return http.HandlerFunc(servePprof)
}

// servePprof dispatches to net/http/pprof by the path's last element:
// profile (CPU), symbol, cmdline and trace have handlers of their own;
// everything else (heap, goroutine, allocs, block, mutex, the index) is
// served by pprof.Index.
func servePprof(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, pprofBasePath) {
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r)
	}
}
