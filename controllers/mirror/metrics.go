package mirror

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var mirrorWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "mirrorlet_mirror_writes_total",
	Help: "Writes of mirror pods to the API server, by operation (create, apply, delete, status) and result.",
}, []string{"operation", "result"})

var mirrorRejected = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "mirrorlet_mirror_rejected_total",
	Help: "Times the API server refused a mirror pod (admission, validation, quota); the static pod keeps running.",
})

func init() {
	metrics.Registry.MustRegister(mirrorWrites, mirrorRejected)
}
