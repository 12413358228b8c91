package app

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// eventSink is the pod workers' staticpod.EventSink (and the prober's): it
// records an Event on the static pod's mirror through the mirror
// reconciler's recorder once the API is up. Without API, or without a
// mirror, the Event is dropped (logged at V(1)): the node never waits for
// the API server.
type eventSink struct {
	log      logr.Logger
	mu       sync.Mutex
	reader   client.Reader
	recorder events.EventRecorder
}

func newEventSink(log logr.Logger) *eventSink { return &eventSink{log: log} }

// connect starts recording through recorder, finding mirrors with reader.
func (s *eventSink) connect(reader client.Reader, recorder events.EventRecorder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reader, s.recorder = reader, recorder
}

// Event implements staticpod.EventSink; it never blocks the caller.
func (s *eventSink) Event(pod types.NamespacedName, eventType, reason, message string) {
	s.mu.Lock()
	reader, recorder := s.reader, s.recorder
	s.mu.Unlock()
	if recorder == nil {
		s.log.V(1).Info("Dropping Event: API not connected", "pod", pod, "reason", reason, "message", message)
		return
	}
	go s.record(reader, recorder, pod, eventType, reason, message)
}

func (s *eventSink) record(reader client.Reader, recorder events.EventRecorder, key types.NamespacedName, eventType, reason, message string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mirror := &corev1.Pod{}
	if err := reader.Get(ctx, key, mirror); err != nil {
		s.log.V(1).Info("Dropping Event: no mirror pod", "pod", key, "reason", reason, "message", message, "error", err.Error())
		return
	}
	recorder.Eventf(mirror, nil, eventType, reason, reason, "%s", message)
}
