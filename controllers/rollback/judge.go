package rollback

import (
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/controllers/podstatus"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/revisions"
)

// judge looks at the running revision of key: it records that it is
// Ready, and rolls it back when it opted in and failed. It returns when to
// look again at the latest (0: only on a change).
func (c *Controller) judge(key types.NamespacedName) time.Duration {
	sp, ok := c.cfg.Desired.Get(key)
	if !ok {
		c.orders.forget(key)
		return 0
	}
	rev, ok := c.cfg.Revisions.Revision(key, sp.Hash)
	if !ok {
		return 0
	}
	now := c.cfg.Clock.Now()
	st := podstatus.Of(sp, c.cfg.States, nil, "", "", now)
	ready := podReady(st)
	if ready && !rev.Ready {
		if err := c.cfg.Revisions.MarkReady(key, sp.Hash); err != nil {
			c.cfg.Log.Error(err, "Cannot record a Ready revision", "pod", key, "revision", rev.Number)
		}
	}
	after, judged := judgedWindow(sp, rev)
	if !judged {
		return 0
	}
	if c.orders.waitsForStartOrder(key, sp.Hash, st, now) {
		return 0 // its state changes when the wait ends
	}
	if reason, msg := failing(st); reason != "" {
		c.rollBack(key, rev, reason, msg)
		return 0
	}
	if left := c.windowEnd(key, rev, after).Sub(now); left > 0 {
		return left
	}
	c.endWindow(key, rev, after, ready || st.Phase == corev1.PodSucceeded)
	return 0
}

// judgedWindow returns the rollback window of sp's revision rev; judged is
// false when the pod did not opt in, runs a pinned revision, or rev was
// judged already.
func judgedWindow(sp *manifest.StaticPod, rev revisions.Revision) (after time.Duration, judged bool) {
	after, optedIn := manifest.RollbackAfter(sp.Pod)
	pinned := sp.Pod.Annotations[revisions.AnnotationPinnedReason] != ""
	return after, optedIn && !pinned && !rev.Settled && rev.Failed == ""
}

// windowEnd is when the window of rev ends: after from when it appeared,
// from this controller's start, or from when it stopped waiting for its
// start order, whichever is latest.
func (c *Controller) windowEnd(key types.NamespacedName, rev revisions.Revision, after time.Duration) time.Time {
	start := rev.Created
	for _, t := range []time.Time{c.started, c.orders.releasedAt(key, rev.Hash)} {
		if t.After(start) {
			start = t
		}
	}
	return start.Add(after)
}

// endWindow settles rev when it is good at the end of its window, else
// rolls it back.
func (c *Controller) endWindow(key types.NamespacedName, rev revisions.Revision, after time.Duration, good bool) {
	if !good {
		c.rollBack(key, rev, revisions.ReasonNotReady, "was not Ready within "+after.String())
		return
	}
	if err := c.cfg.Revisions.MarkSettled(key, rev.Hash); err != nil {
		c.cfg.Log.Error(err, "Cannot record a settled revision", "pod", key, "revision", rev.Number)
	}
	c.cfg.Log.Info("Revision Ready (or Succeeded) within its rollback window", "pod", key, "revision", rev.Number)
}

func podReady(st corev1.PodStatus) bool {
	for _, cond := range st.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// failing returns why a revision fails before its window ends: a
// container in CrashLoopBackOff, or the pod Failed.
func failing(st corev1.PodStatus) (reason, message string) {
	if st.Phase == corev1.PodFailed {
		return revisions.ReasonFailed, "failed"
	}
	for _, cs := range append(st.InitContainerStatuses, st.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil && w.Reason == revisions.ReasonCrashLoop {
			return revisions.ReasonCrashLoop, fmt.Sprintf("crash-looped (container %s)", cs.Name)
		}
	}
	return "", ""
}

// rollBack pins the previous good revision of key in place of rev.
func (c *Controller) rollBack(key types.NamespacedName, rev revisions.Revision, reason, message string) {
	log := c.cfg.Log.WithValues("pod", key, "revision", rev.Number, "reason", reason)
	target, err := c.cfg.Revisions.RollBack(key, rev.Hash, reason, message)
	if errors.Is(err, revisions.ErrNoGoodRevision) {
		log.Info("Revision failed and no earlier revision was ever Ready; it keeps running", "failure", message)
		c.cfg.Events.Event(key, "", corev1.EventTypeWarning, "FailedRollback",
			fmt.Sprintf("revision %d %s; no earlier revision was ever Ready, so it keeps running", rev.Number, message))
		return
	}
	if err != nil {
		log.Error(err, "Rolling back failed")
		return
	}
	log.Info("Rolled back to an earlier revision", "to", target.Number, "failure", message)
	rollbacks.WithLabelValues(key.String(), reason).Inc()
	c.cfg.Desired.Refresh()
	c.cfg.Events.Event(key, "", corev1.EventTypeWarning, "RolledBack",
		fmt.Sprintf("Revision %d %s; rolled back to revision %d until the manifest changes", rev.Number, message, target.Number))
}
