package staticpod

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// sweepOrphanData runs removeOrphanData once, as soon as it can (checked
// every second until the sources have synced).
func (e *Engine) sweepOrphanData(ctx context.Context) {
	_ = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		return e.removeOrphanData(ctx), nil
	})
}

// removeOrphanData removes the data the runtime keeps of pod versions that
// are neither desired nor run by the runtime: versions that vanished while
// mirrorlet was stopped (their sandbox gone, their manifest changed or
// removed), which no worker ever sees. It waits for every source to have
// published once and reports whether it ran (errors are logged and the
// rest is done; the next restart tries again).
func (e *Engine) removeOrphanData(ctx context.Context) bool {
	lister, ok := e.cfg.Runtime.(mruntime.PodDataLister)
	if !ok {
		return true
	}
	if !e.cfg.Desired.Synced() {
		return false
	}
	uids, err := lister.PodDataUIDs(ctx)
	if err != nil {
		e.cfg.Log.Error(err, "Listing pod data failed; retrying")
		return false
	}
	keep := e.knownUIDs()
	for _, uid := range uids {
		if keep[uid] {
			continue
		}
		cctx, cancel := cleanupCtx(ctx)
		err := e.cfg.Runtime.RemovePodData(cctx, uid)
		cancel()
		if err != nil {
			e.cfg.Log.Error(err, "Removing data of a pod version that is gone failed", "uid", uid)
			continue
		}
		e.cfg.Log.Info("Removed data of a pod version that went while mirrorlet was stopped", "uid", uid)
	}
	return true
}

// knownUIDs are the desired pod versions and those the runtime runs.
func (e *Engine) knownUIDs() map[types.UID]bool {
	keep := map[types.UID]bool{}
	for _, sp := range e.cfg.Desired.List() {
		keep[sp.Pod.UID] = true
	}
	for _, key := range e.cfg.Cache.Keys() {
		for _, p := range e.cfg.Cache.ForKey(key) {
			keep[p.UID] = true
		}
	}
	return keep
}
