package mirror

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
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
		{name: "write's event handled", events: func(w *written) { w.observe(writtenPod("a", "12")) }, cached: writtenPod("a", "12"), want: "12"},
		{name: "older event handled", events: func(w *written) { w.observe(writtenPod("a", "11")) }, want: "12", behind: true},
		{name: "mirror deleted after the write", events: func(w *written) { w.observeDelete(writtenPod("a", "13")) }},
		{name: "deletion learned by a relist", events: func(w *written) { w.observeDelete(writtenPod("a", "11")) }},
		{name: "replaced mirror's delete event", events: func(w *written) { w.observeDelete(writtenPod("old", "10")) }, want: "12", behind: true},
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
