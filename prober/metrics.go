package prober

import "github.com/prometheus/client_golang/prometheus"

var probes = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "mirrorlet_prober_probe_total",
	Help: "Probes of containers by probe_type (Liveness, Readiness, Startup) and result (successful, failed, unknown: the prober could not tell).",
}, []string{"probe_type", "result"})

// Collectors returns the prober's metrics, for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{probes} }
