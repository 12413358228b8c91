package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// event is one watch event on a mirror, stamped when the watch delivered it.
type event struct {
	at   time.Time
	typ  watch.EventType
	pod  *corev1.Pod
	name string
}

// recorder keeps every watch event on pods (of one node, or all) and every
// fsnotify stamp of a manifest directory.
type recorder struct {
	mu     sync.Mutex
	events []event
	byName map[string][]event
	stamps map[string]time.Time // manifest file name -> last fsnotify event
}

func newRecorder() *recorder {
	return &recorder{stamps: map[string]time.Time{}, byName: map[string][]event{}}
}

// watchPods records pod events from the API server until ctx ends; node ""
// means every node. It returns once the watch is established. A watch the
// API server closes (a burst can make it drop a watcher it finds slow) is
// opened again from the last resourceVersion seen, so no event is lost.
func (r *recorder) watchPods(ctx context.Context, cs kubernetes.Interface, node string) error {
	selector := ""
	if node != "" {
		selector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}
	pods := cs.CoreV1().Pods("default")
	list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: selector})
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	w, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = selector
			return pods.Watch(ctx, opts)
		},
	})
	if err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			now := time.Now()
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			r.mu.Lock()
			e := event{at: now, typ: ev.Type, pod: pod, name: pod.Name}
			r.events = append(r.events, e)
			r.byName[e.name] = append(r.byName[e.name], e)
			r.mu.Unlock()
		}
	}()
	return nil
}

// watchDir records the time of the last fsnotify event of every file of
// dir until ctx ends.
func (r *recorder) watchDir(ctx context.Context, dir string) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("creating fsnotify watcher: %w", err)
	}
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	go func() {
		defer func() { _ = w.Close() }()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-w.Events:
				now := time.Now()
				name := ev.Name[strings.LastIndex(ev.Name, "/")+1:]
				if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write) || ev.Has(fsnotify.Rename) {
					r.mu.Lock()
					r.stamps[name] = now
					r.mu.Unlock()
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return nil
}

// stamp returns the last fsnotify stamp of file.
func (r *recorder) stamp(file string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.stamps[file]
	return t, ok
}

// first returns the time of the first event on pod name at or after since
// that satisfies cond.
func (r *recorder) first(name string, since time.Time, cond func(event) bool) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.byName[name] {
		if !ev.at.Before(since) && cond(ev) {
			return ev.at, true
		}
	}
	return time.Time{}, false
}

// exists is an event that shows the pod in the API (not its deletion).
func exists(ev event) bool { return ev.typ == watch.Added || ev.typ == watch.Modified }

// ready is an event that shows the mirror Running with every container ready.
func ready(ev event) bool {
	if !exists(ev) || ev.pod.DeletionTimestamp != nil || ev.pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range ev.pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// has reports whether the watch has delivered every pod of pods at its
// resourceVersion (or a later event of the same pod).
func (r *recorder) has(pods []corev1.Pod) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range pods {
		evs := r.byName[p.Name]
		if len(evs) == 0 {
			return false
		}
		last := evs[len(evs)-1].pod
		cmp, err := resourceversion.CompareResourceVersion(last.ResourceVersion, p.ResourceVersion)
		if err != nil || cmp < 0 {
			return false
		}
	}
	return true
}

// history is the watch events of pod name (type, UID, resourceVersion,
// phase, deleting), for error messages.
func (r *recorder) history(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, ev := range r.byName[name] {
		fmt.Fprintf(&b, "\n\t%s %s uid %s rv %s %s deleting=%v", ev.at.UTC().Format("15:04:05.000"), ev.typ,
			ev.pod.UID, ev.pod.ResourceVersion, ev.pod.Status.Phase, ev.pod.DeletionTimestamp != nil)
	}
	return b.String()
}
