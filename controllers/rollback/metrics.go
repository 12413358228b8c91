package rollback

import "github.com/prometheus/client_golang/prometheus"

var rollbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "mirrorlet_revision_rollbacks_total",
	Help: "Rollbacks of static pods to an earlier revision, by pod and reason (NotReady, CrashLoopBackOff, Failed: automatic; ManualRollback: mirrorlet rollback).",
}, []string{"pod", "reason"})

// Collectors returns the package's metrics, for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{rollbacks} }
