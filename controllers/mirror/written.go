package mirror

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// CacheVersion returns the resourceVersion up to which the pod cache has
// received the watch (client-go's LastSyncResourceVersion of the pod
// informer): what the cache holds is never newer than that.
type CacheVersion func() string

// written remembers, by key, the mirror as mirrorlet's last write left it
// (the API server's answer), until the cache has received that write.
//
// Every write wakes the mirror's reconcile again through its own watch
// event, and the reconciles in between read the cache: without this
// record they would see the mirror as it was before the write (a new
// mirror without its status, a deleted mirror still there) and write
// again what was just written. Resource versions are compared as
// integers (KEP-5504): when the informer has not received the version
// mirrorlet wrote, whatever the cache holds is older than it.
type written struct {
	version CacheVersion // nil: the cache is never known to be behind
	mu      sync.Mutex
	last    map[types.NamespacedName]*corev1.Pod
}

// view returns the mirror to reconcile: the last one written when the
// cache has not received it yet (behind true), else cached (nil: none).
func (w *written) view(key types.NamespacedName, cached *corev1.Pod) (mirror *corev1.Pod, behind bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	last, ok := w.last[key]
	if !ok {
		return cached, false
	}
	if w.behind(last.ResourceVersion) {
		return last.DeepCopy(), true
	}
	delete(w.last, key)
	return cached, false
}

// behind reports whether the cache has not received resource version rv.
// Callers hold w.mu.
func (w *written) behind(rv string) bool {
	if w.version == nil {
		return false
	}
	cmp, err := resourceversion.CompareResourceVersion(rv, w.version())
	return err == nil && cmp > 0
}

// record remembers pod as mirrorlet's last write of key.
func (w *written) record(key types.NamespacedName, pod *corev1.Pod) {
	if pod == nil || pod.ResourceVersion == "" {
		w.forget(key)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last = map[types.NamespacedName]*corev1.Pod{}
	}
	w.last[key] = pod.DeepCopy()
}

// forget drops what was written of key: the next reconcile reads the
// cache.
func (w *written) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.last, key)
}
