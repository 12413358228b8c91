package staticpod

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

const (
	defaultGrace = 30 * time.Second
	// cleanupTimeout bounds a cleanup call, made with a context of its own.
	cleanupTimeout = 2 * time.Minute
)

// sync makes the runtime run what the desired set says for the worker's key.
func (w *worker) sync(ctx context.Context) (result, error) {
	pods := w.e.cfg.Cache.ForKey(w.key)
	for _, p := range pods {
		w.see(p.UID)
	}
	sp, ok := w.e.cfg.Desired.Get(w.key)
	if !ok {
		if !w.e.cfg.Desired.Synced() {
			return result{requeue: time.Second}, nil
		}
		return w.syncGone(ctx, pods)
	}
	uid := sp.Pod.UID
	w.see(uid)
	res := result{uids: uidsOf(pods, uid)}
	var mine []mruntime.Pod
	for _, p := range pods {
		if p.UID == uid {
			mine = append(mine, p)
			continue
		}
		// Replace: every other version stops first, with its grace.
		if err := w.stopPod(ctx, &p, graceOf(nil, &p)); err != nil {
			return res, err
		}
		res.acted = true
	}
	if res.acted && w.replacedDuring(uid) {
		// The stops took their grace periods, and the manifest changed
		// meanwhile (churn): start the newest version, not this one.
		return res, nil
	}
	if err := w.removeDataExcept(ctx, uid); err != nil {
		return res, err
	}
	s := &podSync{w: w, sp: sp, pods: mine, res: res, waiting: map[string]podstate.Waiting{}}
	return s.run(ctx)
}

// replacedDuring reports whether the desired version is no longer uid
// (the one this sync began with), as the kubelet's pod worker starts only
// the latest update queued while it terminated the previous version.
func (w *worker) replacedDuring(uid types.UID) bool {
	sp, ok := w.e.cfg.Desired.Get(w.key)
	return !ok || sp.Pod.UID != uid
}

func (w *worker) see(uid types.UID) {
	w.uids[uid] = true
	w.e.learn(uid, w.key)
}

// syncGone stops every sandbox of a static pod that is no longer desired
// and removes its data; the worker ends once nothing is left.
func (w *worker) syncGone(ctx context.Context, pods []mruntime.Pod) (result, error) {
	res := result{uids: uidsOf(pods, "")}
	for _, p := range pods {
		if err := w.stopPod(ctx, &p, graceOf(nil, &p)); err != nil {
			return res, err
		}
		res.acted = true
	}
	if err := w.removeDataExcept(ctx, ""); err != nil {
		return res, err
	}
	w.e.cfg.States.Delete(w.key)
	res.done = len(pods) == 0
	return res, nil
}

// removeDataExcept removes the data of every version of the pod seen but
// keep, once their sandboxes are gone: the versions are no longer desired.
func (w *worker) removeDataExcept(ctx context.Context, keep types.UID) error {
	for uid := range w.uids {
		if uid == keep {
			continue
		}
		cctx, cancel := cleanupCtx(ctx)
		err := w.e.cfg.Runtime.RemovePodData(cctx, uid)
		cancel()
		if err != nil {
			return fmt.Errorf("removing data of pod %s version %s: %w", w.key, uid, err)
		}
		w.logger().Info("Removed pod data", "uid", uid)
		if w.e.cfg.Prober != nil {
			w.e.cfg.Prober.RemovePod(uid)
		}
		w.forgetFiles(uid)
		w.forgetGate(uid)
		delete(w.uids, uid)
		delete(w.attempts, uid)
		w.e.forget(uid)
	}
	return nil
}

// stopPod stops and removes one sandbox with its containers. A sandbox
// stopped but not removed blocks nothing (as in the kubelet, whose garbage
// collector removes sandboxes): its removal is tried again at the next
// sync that sees it.
func (w *worker) stopPod(ctx context.Context, p *mruntime.Pod, grace time.Duration) error {
	w.logger().Info("Stopping pod", "uid", p.UID, "sandbox", p.SandboxID, "grace", grace)
	err := w.e.cfg.Runtime.StopPod(ctx, p.SandboxID, grace)
	if errors.Is(err, mruntime.ErrSandboxNotRemoved) {
		w.logger().Error(err, "Sandbox stopped but not removed; removal is tried again later", "uid", p.UID, "sandbox", p.SandboxID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("stopping pod %s sandbox %s: %w", w.key, p.SandboxID, err)
	}
	return nil
}

// graceOf is the termination grace period of a pod version: from its
// manifest when desired, else as the runtime recorded it.
func graceOf(sp *manifest.StaticPod, p *mruntime.Pod) time.Duration {
	if sp != nil && sp.Pod.Spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*sp.Pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	if p != nil && p.Grace != nil {
		return *p.Grace
	}
	return defaultGrace
}

// cleanupCtx is a context for a cleanup call: its own deadline, not ended
// by ctx (a sync that timed out must still clean up).
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// uidsOf returns the distinct UIDs of pods, plus extra if not empty.
func uidsOf(pods []mruntime.Pod, extra types.UID) []types.UID {
	var out []types.UID
	if extra != "" {
		out = append(out, extra)
	}
	for _, p := range pods {
		if !slices.Contains(out, p.UID) {
			out = append(out, p.UID)
		}
	}
	return out
}
