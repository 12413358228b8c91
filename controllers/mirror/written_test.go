package mirror

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func writtenPod(uid, rv string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: "default", Name: "web-node", UID: types.UID(uid), ResourceVersion: rv,
	}}
}

// TestWrittenPreferredUntilTheCacheHasIt plays the pod cache behind
// mirrorlet's own writes, as a reconcile sees it between a write and the
// write's watch event (the reflector may already have queued that event).
func TestWrittenPreferredUntilTheCacheHasIt(t *testing.T) {
	key := types.NamespacedName{Namespace: "default", Name: "web-node"}
	for _, tc := range []struct {
		name   string
		events func(w *written) // what the pod events bring after the write
		cached *corev1.Pod
		after  time.Duration
		want   string // resource version of the mirror view returns; "" none
		behind bool
	}{
		{name: "new mirror, not cached yet", want: "12", behind: true},
		{name: "cache has the mirror before its status write", cached: writtenPod("a", "11"), want: "12", behind: true},
		{name: "cache has the write", cached: writtenPod("a", "12"), want: "12"},
		{name: "cache has a later change", cached: writtenPod("a", "15"), want: "15"},
		{name: "cache has the terminating mirror the write replaced", cached: writtenPod("old", "9"), want: "12", behind: true},
		{name: "write's event handled", events: func(w *written) { w.observe(writtenPod("a", "12")) }},
		{name: "later change's event handled", events: func(w *written) { w.observe(writtenPod("b", "14")) }},
		{name: "older event handled", events: func(w *written) { w.observe(writtenPod("a", "11")) }, want: "12", behind: true},
		{name: "mirror deleted after the write", events: func(w *written) { w.observeDelete(writtenPod("a", "13")) }},
		{name: "deletion learned by a relist", events: func(w *written) { w.observeDelete(writtenPod("a", "11")) }},
		{name: "replaced mirror's delete event", events: func(w *written) { w.observeDelete(writtenPod("old", "10")) }, want: "12", behind: true},
		{name: "later pod's delete event", events: func(w *written) { w.observeDelete(writtenPod("b", "14")) }},
		// A relist's tombstone of the mirror the write replaced tells
		// nothing of the write: the record stays until writtenMaxAge.
		{name: "replaced mirror's tombstone, then too old", events: func(w *written) { w.observeDelete(writtenPod("old", "9")) }, after: writtenMaxAge + time.Second},
		{name: "record too old", after: writtenMaxAge + time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Now())
			w := &written{clock: clk}
			_ = w.events()
			w.record(key, writtenPod("a", "12"))
			if tc.events != nil {
				tc.events(w)
			}
			clk.Step(tc.after)
			got, behind := w.view(key, tc.cached)
			gotRV := ""
			if got != nil {
				gotRV = got.ResourceVersion
			}
			if gotRV != tc.want || behind != tc.behind {
				t.Errorf("view = resourceVersion %q, behind %v; want %q, %v", gotRV, behind, tc.want, tc.behind)
			}
		})
	}
}

// TestWrittenNotRecordedOnceSeenDeleted: a write answered after the cache
// saw the pod deleted is not preferred to the empty cache.
func TestWrittenNotRecordedOnceSeenDeleted(t *testing.T) {
	key := types.NamespacedName{Namespace: "default", Name: "web-node"}
	w := &written{clock: clocktesting.NewFakeClock(time.Now())}
	_ = w.events()
	w.observeDelete(writtenPod("a", "13"))
	w.record(key, writtenPod("a", "12"))
	if got, behind := w.view(key, nil); got != nil || behind {
		t.Errorf("view = %v, behind %v; want none", got, behind)
	}
}

// TestWrittenOffWithoutEvents: without the pod events nothing would ever
// drop a record, so none is kept.
func TestWrittenOffWithoutEvents(t *testing.T) {
	key := types.NamespacedName{Namespace: "default", Name: "web-node"}
	w := &written{clock: clocktesting.NewFakeClock(time.Now())}
	w.record(key, writtenPod("a", "12"))
	if got, behind := w.view(key, nil); got != nil || behind {
		t.Errorf("view = %v, behind %v; want none", got, behind)
	}
}

// checkingQueue checks, at each Add, that the record has been dropped.
type checkingQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	t     *testing.T
	w     *written
	added int
}

func (q *checkingQueue) Add(req reconcile.Request) {
	q.added++
	if _, behind := q.w.view(req.NamespacedName, nil); behind {
		q.t.Errorf("%s enqueued while the record of the write is still preferred", req.NamespacedName)
	}
}

// TestPodEventsDropTheRecordBeforeTheReconcile: the reconcile an event
// wakes never reads a record the event has made stale.
func TestPodEventsDropTheRecordBeforeTheReconcile(t *testing.T) {
	key := types.NamespacedName{Namespace: "default", Name: "web-node"}
	for name, send := range map[string]func(h handler.EventHandler, q *checkingQueue){
		"create": func(h handler.EventHandler, q *checkingQueue) {
			h.Create(t.Context(), event.CreateEvent{Object: writtenPod("a", "12")}, q)
		},
		"update": func(h handler.EventHandler, q *checkingQueue) {
			h.Update(t.Context(), event.UpdateEvent{ObjectOld: writtenPod("a", "11"), ObjectNew: writtenPod("a", "12")}, q)
		},
		"delete": func(h handler.EventHandler, q *checkingQueue) {
			h.Delete(t.Context(), event.DeleteEvent{Object: writtenPod("a", "13")}, q)
		},
		"tombstone": func(h handler.EventHandler, q *checkingQueue) {
			h.Delete(t.Context(), event.DeleteEvent{Object: writtenPod("a", "11"), DeleteStateUnknown: true}, q)
		},
	} {
		t.Run(name, func(t *testing.T) {
			w := &written{clock: clocktesting.NewFakeClock(time.Now())}
			h := w.events()
			w.record(key, writtenPod("a", "12"))
			q := &checkingQueue{
				TypedRateLimitingInterface: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]()),
				t:                          t, w: w,
			}
			defer q.ShutDown()
			send(h, q)
			if q.added != 1 {
				t.Errorf("%d requests enqueued, want 1", q.added)
			}
		})
	}
}
