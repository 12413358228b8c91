package mirror

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// writtenMaxAge bounds how long a write is preferred to the cache. The
// write's own watch event normally drops it within milliseconds; the cap
// is for what no event tells: after a broken watch, a mirror mirrorlet
// made and someone deleted before the cache held it (the relist's
// tombstone, if any, carries the mirror it replaced). A cache more than
// this behind costs a write again, as without the record.
const writtenMaxAge = 10 * time.Second

// goneMaxAge is how long the UID of a deleted pod is remembered, for a
// write whose answer comes after the cache has seen the pod deleted.
const goneMaxAge = time.Minute

// written remembers, by key, the mirror as mirrorlet's last write left it
// (the API server's answer), until the pod cache has it.
//
// Every write wakes the mirror's reconcile again through its own watch
// event, and the reconciles in between read the cache: without this
// record they would see the mirror as it was before the write (a new
// mirror without its status, a deleted mirror still there) and write
// again what was just written. Resource versions are compared as
// integers (KEP-5504).
//
// The record is dropped by the pod events themselves (see events), which
// come after the cache holds the event's pod and before the reconcile
// they wake, or when a reconcile reads a cached pod at least as new. The
// informer's LastSyncResourceVersion cannot tell: the reflector sets it
// when it queues an event, before the cache is updated.
type written struct {
	clock clock.Clock
	mu    sync.Mutex
	// on: the pod events reach observe and observeDelete (see events);
	// without them nothing is recorded, since nothing would drop it.
	on   bool
	last map[types.NamespacedName]record
	// gone holds the UIDs of pods the cache saw deleted, in the order
	// seen, for at least goneMaxAge (pruned on the next delete).
	gone      map[types.UID]struct{}
	goneOrder []goneUID
}

type record struct {
	pod *corev1.Pod
	at  time.Time
}

type goneUID struct {
	uid types.UID
	at  time.Time
}

// view returns the mirror to reconcile: the last one written when the
// cache does not have it yet (behind true), else cached (nil: none).
func (w *written) view(key types.NamespacedName, cached *corev1.Pod) (mirror *corev1.Pod, behind bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rec, ok := w.last[key]
	switch {
	case !ok:
		return cached, false
	case cached != nil && !newer(rec.pod, cached),
		w.clock.Since(rec.at) > writtenMaxAge:
		delete(w.last, key)
		return cached, false
	}
	return rec.pod.DeepCopy(), true
}

// newer reports whether a's resource version is greater than b's.
func newer(a, b *corev1.Pod) bool {
	cmp, err := resourceversion.CompareResourceVersion(a.ResourceVersion, b.ResourceVersion)
	return err == nil && cmp > 0
}

// record remembers pod as mirrorlet's last write of key, unless the cache
// already saw it deleted or the pod events are not observed (nothing
// would drop the record).
func (w *written) record(key types.NamespacedName, pod *corev1.Pod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.on || pod == nil || pod.ResourceVersion == "" {
		delete(w.last, key)
		return
	}
	if _, deleted := w.gone[pod.UID]; deleted {
		delete(w.last, key)
		return
	}
	if w.last == nil {
		w.last = map[types.NamespacedName]record{}
	}
	w.last[key] = record{pod: pod.DeepCopy(), at: w.clock.Now()}
}

// forget drops what was written of key: the next reconcile reads the
// cache.
func (w *written) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.last, key)
}

// observe takes in a pod the cache now holds: a record of its key that is
// not newer is dropped.
func (w *written) observe(obj client.Object) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := client.ObjectKeyFromObject(pod)
	w.mu.Lock()
	defer w.mu.Unlock()
	if rec, ok := w.last[key]; ok && !newer(rec.pod, pod) {
		delete(w.last, key)
	}
}

// observeDelete takes in a pod the cache no longer holds: a record of it,
// or an older one of its key, is dropped, and its UID is remembered.
func (w *written) observeDelete(obj client.Object) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := client.ObjectKeyFromObject(pod)
	now := w.clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if rec, ok := w.last[key]; ok && (rec.pod.UID == pod.UID || !newer(rec.pod, pod)) {
		delete(w.last, key)
	}
	for len(w.goneOrder) > 0 && now.Sub(w.goneOrder[0].at) > goneMaxAge {
		delete(w.gone, w.goneOrder[0].uid)
		w.goneOrder = w.goneOrder[1:]
	}
	if w.gone == nil {
		w.gone = map[types.UID]struct{}{}
	}
	if _, ok := w.gone[pod.UID]; !ok {
		w.gone[pod.UID] = struct{}{}
		w.goneOrder = append(w.goneOrder, goneUID{uid: pod.UID, at: now})
	}
}

// events returns the mirror controller's pod event handler: it enqueues
// the pod's key, as handler.EnqueueRequestForObject does, after telling w
// what the cache now holds, so that the reconcile it wakes never reads a
// record the event has made stale. It turns recording on.
func (w *written) events() handler.EventHandler {
	w.mu.Lock()
	w.on = true
	w.mu.Unlock()
	return podEvents{w: w, next: &handler.EnqueueRequestForObject{}}
}

type podEvents struct {
	w    *written
	next handler.EventHandler
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func (h podEvents) Create(ctx context.Context, e event.CreateEvent, q queue) {
	h.w.observe(e.Object)
	h.next.Create(ctx, e, q)
}

func (h podEvents) Update(ctx context.Context, e event.UpdateEvent, q queue) {
	h.w.observe(e.ObjectNew)
	h.next.Update(ctx, e, q)
}

func (h podEvents) Delete(ctx context.Context, e event.DeleteEvent, q queue) {
	h.w.observeDelete(e.Object)
	h.next.Delete(ctx, e, q)
}

func (h podEvents) Generic(ctx context.Context, e event.GenericEvent, q queue) {
	h.next.Generic(ctx, e, q)
}
