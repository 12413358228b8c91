package staticpod

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/prober"
)

// FileWatcher watches the content of the host files whose change restarts
// a static pod (manifest.AnnotationRestartOnChange). Optional: with none,
// no pod restarts on a file change.
type FileWatcher interface {
	// Watch sets the paths watched for pod version uid; workers call it on
	// every sync, so it must be cheap when the paths are the same. New
	// paths take their current content as the version's baseline.
	Watch(uid types.UID, paths []string)
	// Forget stops watching for uid; a later Watch starts afresh.
	Forget(uid types.UID)
	// Changed returns how many changes of the content happened for uid
	// since it was first watched (0: none), and the paths of the last.
	// The watcher calls the Engine's OnChange(uid) after each.
	Changed(uid types.UID) (seq uint64, paths []string)
}

// fileState is what a worker knows of its pod's watched files.
type fileState struct {
	// handled holds, per pod version, the change sequence number already
	// acted upon.
	handled map[types.UID]uint64
}

// restartOnChange restarts the running app containers of the pod,
// gracefully, once per change of the host files it watches. The next sync
// starts them again (no back-off: this is no crash).
func (s *podSync) restartOnChange(ctx context.Context) {
	f := s.w.e.cfg.Files
	if f == nil {
		return
	}
	uid := s.sp.Pod.UID
	f.Watch(uid, manifest.RestartOnChangePaths(s.sp.Pod))
	seq, paths := f.Changed(uid)
	st := &s.w.files
	if st.handled == nil {
		st.handled = map[types.UID]uint64{}
	}
	if seq == st.handled[uid] {
		return
	}
	running := runningAttempts(s.cur, true)
	if len(running) == 0 {
		st.handled[uid] = seq // what starts next reads the new content
		return
	}
	names := make([]string, 0, len(running))
	for _, r := range running {
		names = append(names, r.Name)
	}
	s.w.logger().Info("Restarting containers: watched host files changed", "paths", paths, "containers", names)
	s.w.e.cfg.Events.Event(s.sp.Key(), "", corev1.EventTypeNormal, "HostFileChanged",
		fmt.Sprintf("Host file %s changed (%s); restarting containers %s", strings.Join(paths, ", "),
			manifest.AnnotationRestartOnChange, strings.Join(names, ", ")))
	if s.stopAll(ctx, running) {
		st.handled[uid] = seq
		return
	}
	s.requeueIn(time.Second)
}

// stopAll stops the containers in parallel, each with the pod's grace
// period, and clears their back-off; it reports whether all stopped.
func (s *podSync) stopAll(ctx context.Context, running []prober.Running) bool {
	grace := graceOf(s.sp, nil)
	log := s.w.logger() // made here: the goroutines below share it
	var wg sync.WaitGroup
	ok := make([]bool, len(running))
	for i, r := range running {
		wg.Go(func() {
			if err := s.w.e.cfg.Runtime.StopContainer(ctx, r.ID, grace); err != nil {
				log.Error(err, "Stopping container for a host file change failed", "container", r.Name, "id", r.ID)
				return
			}
			ok[i] = true
		})
	}
	wg.Wait()
	s.res.acted = true
	all := true
	for i, r := range running {
		if ok[i] {
			s.w.e.backoff.Reset(backoffKey(s.sp.Pod.UID, r.Name))
		}
		all = all && ok[i]
	}
	return all
}

// forgetFiles stops watching the files of a pod version no longer desired.
func (w *worker) forgetFiles(uid types.UID) {
	if w.e.cfg.Files != nil {
		w.e.cfg.Files.Forget(uid)
	}
	delete(w.files.handled, uid)
}
