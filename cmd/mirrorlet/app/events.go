package app

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/controllers/mirror"
	"github.com/mirrorlet/mirrorlet/manifest"
)

const (
	// maxPendingEvents bounds the Events kept while the API is not
	// connected yet; older ones are dropped.
	maxPendingEvents = 100
	// mirrorWait is how long an Event waits for its mirror to exist.
	mirrorWait = 30 * time.Second
)

// eventSink is the pod workers' staticpod.EventSink (and the prober's): it
// records an Event on the static pod's mirror through the mirror
// reconciler's recorder. Events made before the API is connected wait (at
// most maxPendingEvents), and each waits up to mirrorWait for its mirror;
// past that it is dropped (logged at V(1)). The node never waits for the
// API server.
type eventSink struct {
	log logr.Logger
	// hashOf returns the hash of the static pod version that runs for a
	// key ("" when unknown): an Event is about that version.
	hashOf   func(types.NamespacedName) string
	mu       sync.Mutex
	reader   client.Reader
	recorder events.EventRecorder
	pending  []pendingEvent
}

type pendingEvent struct {
	pod                                   types.NamespacedName
	container, eventType, reason, message string
	// hash is the static pod version the Event is about ("" when unknown).
	hash string
}

func newEventSink(log logr.Logger, hashOf func(types.NamespacedName) string) *eventSink {
	return &eventSink{log: log, hashOf: hashOf}
}

// connect starts recording through recorder, finding mirrors with reader,
// and records the Events made so far.
func (s *eventSink) connect(reader client.Reader, recorder events.EventRecorder) {
	s.mu.Lock()
	s.reader, s.recorder = reader, recorder
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, e := range pending {
		go s.record(reader, recorder, e)
	}
}

// Event implements staticpod.EventSink; it never blocks the caller.
func (s *eventSink) Event(pod types.NamespacedName, container, eventType, reason, message string) {
	e := pendingEvent{pod: pod, container: container, eventType: eventType, reason: reason, message: message}
	if s.hashOf != nil {
		e.hash = s.hashOf(pod)
	}
	s.mu.Lock()
	reader, recorder := s.reader, s.recorder
	if recorder == nil {
		if len(s.pending) == maxPendingEvents {
			s.log.V(1).Info("Dropping Event: API not connected", "pod", s.pending[0].pod, "reason", s.pending[0].reason)
			s.pending = s.pending[1:]
		}
		s.pending = append(s.pending, e)
	}
	s.mu.Unlock()
	if recorder != nil {
		go s.record(reader, recorder, e)
	}
}

// record emits e on its mirror once the mirror exists, preferably the
// mirror of the version e is about: after a spec change or a rollback the
// mirror is replaced, and an Event on the old one (its config.mirror hash)
// would not show in kubectl describe of the new one. Past mirrorWait it
// takes whichever mirror there is.
func (s *eventSink) record(reader client.Reader, recorder events.EventRecorder, e pendingEvent) {
	mirrorPod := &corev1.Pod{}
	found := false
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, mirrorWait, true,
		func(ctx context.Context) (bool, error) {
			found = reader.Get(ctx, e.pod, mirrorPod) == nil
			return found && (e.hash == "" || mirrorPod.Annotations[manifest.AnnotationMirror] == e.hash), nil
		})
	if err != nil && !found {
		s.log.V(1).Info("Dropping Event: no mirror pod", "pod", e.pod, "reason", e.reason, "message", e.message)
		return
	}
	recorder.Eventf(mirror.ContainerEventRef(mirrorPod, e.container), nil, e.eventType, e.reason, e.reason, "%s", e.message)
}

// desiredHash is the hash of the static pod version the desired set runs
// for key ("" when none).
func (a *agent) desiredHash(key types.NamespacedName) string {
	if sp, ok := a.desired.Get(key); ok {
		return sp.Hash
	}
	return ""
}
