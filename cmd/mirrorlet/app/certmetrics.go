package app

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/certificate"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var renewFailures = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "mirrorlet_client_certificate_renew_errors_total",
	Help: "Failed attempts to renew the client certificate (--rotate-certificates).",
})

// registerCertificateMetrics registers the renewal metrics and the expiry
// of mgr's current certificate, once per process.
var registerCertificateMetrics = sync.OnceValue(func() *certificateExpiry {
	e := &certificateExpiry{}
	metrics.Registry.MustRegister(renewFailures, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mirrorlet_client_certificate_expiration_seconds",
		Help: "Expiry of the client certificate in use, in seconds since the epoch (--rotate-certificates).",
	}, e.seconds))
	return e
})

// certificateExpiry reads the expiry of the current certificate of the
// latest certificate manager.
type certificateExpiry struct {
	mu  sync.Mutex
	mgr certificate.Manager
}

func (e *certificateExpiry) set(mgr certificate.Manager) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mgr = mgr
}

func (e *certificateExpiry) seconds() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mgr == nil {
		return 0
	}
	if cert := e.mgr.Current(); cert != nil && cert.Leaf != nil {
		return float64(cert.Leaf.NotAfter.Unix())
	}
	return 0
}
