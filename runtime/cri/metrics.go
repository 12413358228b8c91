package cri

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// metrics are what Run exposes about how changes are learnt.
type metrics struct {
	streaming prometheus.Gauge
	events    *prometheus.CounterVec
	changes   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		streaming: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mirrorlet_runtime_events_streaming",
			Help: "1 while container changes come from the CRI runtime's event stream, 0 while the runtime cache relists every second instead.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorlet_runtime_container_events_total",
			Help: "CRI container events received, by type (created, started, stopped, deleted), mirrorlet's or not.",
		}, []string{"type"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorlet_runtime_pod_changes_total",
			Help: "Changes of mirrorlet's pods reported to the runtime cache from the CRI event stream (source=event).",
		}, []string{"source"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.streaming, err = register(reg, m.streaming); err != nil {
		return nil, err
	}
	if m.events, err = register(reg, m.events); err != nil {
		return nil, err
	}
	if m.changes, err = register(reg, m.changes); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name (a second Runtime in one process shares the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("registering CRI runtime metrics: %w", err)
}

func (m *metrics) setStreaming(on bool) {
	if on {
		m.streaming.Set(1)
	} else {
		m.streaming.Set(0)
	}
}

func (m *metrics) event(t runtimeapi.ContainerEventType) {
	name := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(t.String(), "CONTAINER_"), "_EVENT"))
	m.events.WithLabelValues(name).Inc()
}

func (m *metrics) change(source string) { m.changes.WithLabelValues(source).Inc() }
