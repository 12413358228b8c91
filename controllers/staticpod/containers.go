package staticpod

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// syncContainers runs the init containers in order, then the app
// containers.
func (s *podSync) syncContainers(ctx context.Context) {
	spec := &s.sp.Pod.Spec
	if !s.syncInit(ctx, spec) {
		for _, c := range spec.Containers {
			s.waiting[c.Name] = podstate.Waiting{Reason: "PodInitializing"}
		}
		return
	}
	for i := range spec.Containers {
		s.syncContainer(ctx, &spec.Containers[i])
	}
}

// syncInit runs init containers in order and reports whether all
// succeeded. A failed one is retried with back-off (under Never the pod
// has finished before this runs).
func (s *podSync) syncInit(ctx context.Context, spec *corev1.PodSpec) bool {
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		latest := s.cur.Latest(c.Name)
		switch {
		case latest == nil:
			s.start(ctx, c)
			return false
		case latest.State == mruntime.ContainerExited && latest.ExitCode == 0:
			continue
		case latest.State == mruntime.ContainerRunning:
			return false
		default: // exited with an error, or left Created/Unknown
			s.restart(ctx, c, latest)
			return false
		}
	}
	return true
}

// syncContainer starts or restarts one app container as restartPolicy says.
func (s *podSync) syncContainer(ctx context.Context, c *corev1.Container) {
	latest := s.cur.Latest(c.Name)
	switch {
	case latest == nil:
		s.start(ctx, c)
	case stale(latest):
		s.restart(ctx, c, latest)
	case latest.State == mruntime.ContainerRunning:
	case s.shouldRestart(latest):
		s.restart(ctx, c, latest)
	}
}

// stale reports whether an attempt never ran to a known end: left Created
// (mirrorlet killed between create and start, a start that timed out) or
// Unknown. Like the kubelet, it is removed and the next attempt started.
func stale(c *mruntime.Container) bool {
	return c.State == mruntime.ContainerCreated || c.State == mruntime.ContainerUnknown
}

// shouldRestart reports whether an exited app container runs again.
func (s *podSync) shouldRestart(c *mruntime.Container) bool {
	switch s.sp.Pod.Spec.RestartPolicy {
	case corev1.RestartPolicyAlways:
		return true
	case corev1.RestartPolicyOnFailure:
		return c.ExitCode != 0 || s.w.livenessKilled[c.ID]
	default:
		return false
	}
}

// restart starts the next attempt of a container unless it is in back-off.
func (s *podSync) restart(ctx context.Context, c *corev1.Container, latest *mruntime.Container) {
	id := backoffKey(s.sp.Pod.UID, c.Name)
	b := s.w.e.backoff
	since := latest.FinishedAt
	if since.IsZero() {
		since = latest.CreatedAt
	}
	if b.IsInBackOffSince(id, since) {
		left := b.Get(id) - s.w.e.cfg.Clock.Since(since)
		s.waiting[c.Name] = podstate.Waiting{Reason: "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", b.Get(id), c.Name, s.sp.Key())}
		s.requeueIn(left)
		return
	}
	b.Next(id, since)
	if latest.State == mruntime.ContainerUnknown {
		s.stopUnknown(ctx, latest)
	}
	s.w.logger().Info("Restarting container", "container", c.Name, "state", latest.State, "exitCode", latest.ExitCode,
		"reason", latest.Reason)
	// The stale attempt goes only once the next one exists: removed before
	// and the create failing, the container's restart count would drop
	// back to the attempt before it.
	if s.start(ctx, c) && stale(latest) {
		s.discard(ctx, latest)
	}
}

// stopUnknown stops an attempt in an unknown state (it may run), with a
// context of its own, before the next attempt starts.
func (s *podSync) stopUnknown(ctx context.Context, c *mruntime.Container) {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	s.res.acted = true
	if err := s.w.e.cfg.Runtime.StopContainer(cctx, c.ID, 0); err != nil {
		s.w.logger().Error(err, "Stopping container in unknown state failed", "container", c.Name, "id", c.ID)
	}
}

// discard removes an attempt left Created or Unknown, with a context of
// its own.
func (s *podSync) discard(ctx context.Context, c *mruntime.Container) {
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	s.res.acted = true
	if err := s.w.e.cfg.Runtime.RemoveContainer(cctx, c.ID); err != nil {
		s.w.logger().Error(err, "Removing container that never started failed", "container", c.Name, "id", c.ID)
	}
}

// start creates and starts the next attempt of a container, recording why
// it is waiting when that fails. It reports whether the attempt was made
// (started, or created and failed to start).
func (s *podSync) start(ctx context.Context, c *corev1.Container) bool {
	uid := s.sp.Pod.UID
	pullKey := backoffKey(uid, c.Name) + "/pull"
	b := s.w.e.backoff
	now := s.w.e.cfg.Clock.Now()
	if b.IsInBackOffSinceUpdate(pullKey, now) {
		// Until the first retry the pull's own error shows, as in the
		// kubelet between two syncs; then ImagePullBackOff.
		w, ok := s.w.pullErrs[pullKey]
		if !ok || b.Get(pullKey) > s.w.e.cfg.BackoffInitial {
			w = podstate.Waiting{Reason: "ImagePullBackOff", Message: fmt.Sprintf("Back-off pulling image %q", c.Image)}
		}
		s.waiting[c.Name] = w
		s.requeueIn(s.w.backoffLeft(pullKey, now))
		return false
	}
	createKey := backoffKey(uid, c.Name) + "/create"
	if b.IsInBackOffSinceUpdate(createKey, now) {
		s.waiting[c.Name] = s.w.createErrs[createKey]
		s.requeueIn(s.w.backoffLeft(createKey, now))
		return false
	}
	attempt := s.w.nextAttempt(uid, c.Name)
	id, err := s.w.e.cfg.Runtime.StartContainer(ctx, s.sp.Pod, s.cur.SandboxID, c, attempt)
	switch {
	case errors.Is(err, mruntime.ErrImageNeverPull):
		// As the kubelet: nothing was pulled, so no pull back-off; tried
		// again after a failed sync's fixed delay.
		s.waiting[c.Name] = podstate.Waiting{Reason: "ErrImageNeverPull",
			Message: fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)}
		s.requeueIn(syncErrorRetry)
		s.w.logger().Error(err, "Image not present with pull policy Never", "container", c.Name, "image", c.Image)
	case errors.Is(err, mruntime.ErrImagePull):
		b.Next(pullKey, now)
		s.w.failedAt[pullKey] = now
		s.waiting[c.Name] = podstate.Waiting{Reason: "ErrImagePull", Message: err.Error()}
		s.w.pullErrs[pullKey] = s.waiting[c.Name]
		s.requeueIn(b.Get(pullKey))
		s.w.logger().Error(err, "Pulling image failed", "container", c.Name, "image", c.Image)
	case errors.Is(err, mruntime.ErrStartFailed):
		delete(s.w.pullErrs, pullKey)
		delete(s.w.failedAt, pullKey)
		// The attempt exists, exited (StartError) or stuck in Created: the
		// next sync sees it and restartPolicy decides.
		b.Reset(pullKey)
		s.res.acted = true
		s.w.recordAttempt(uid, c.Name, attempt)
		s.w.logger().Error(err, "Starting container failed", "container", c.Name, "attempt", attempt, "id", id)
		s.w.e.cfg.Events.Event(s.sp.Key(), c.Name, corev1.EventTypeWarning, "Failed", fmt.Sprintf("Error: %v", err))
	case err != nil:
		// The runtime may hold a half-made container: refresh, and retry
		// with back-off.
		s.res.acted = true
		b.Next(createKey, now)
		s.w.failedAt[createKey] = now
		s.waiting[c.Name] = podstate.Waiting{Reason: "CreateContainerError", Message: err.Error()}
		s.w.createErrs[createKey] = s.waiting[c.Name]
		s.requeueIn(b.Get(createKey))
		s.w.logger().Error(err, "Creating container failed", "container", c.Name)
	default:
		b.Reset(pullKey)
		b.Reset(createKey)
		delete(s.w.pullErrs, pullKey)
		delete(s.w.createErrs, createKey)
		delete(s.w.failedAt, pullKey)
		delete(s.w.failedAt, createKey)
		s.res.acted = true
		s.w.recordAttempt(uid, c.Name, attempt)
		s.w.logger().Info("Started container", "container", c.Name, "attempt", attempt, "id", id)
	}
	return err == nil || errors.Is(err, mruntime.ErrStartFailed)
}

// syncErrorRetry is when a sync that failed for a reason no back-off
// covers (an image missing under pull policy Never) is tried again: the
// kubelet's pod worker retries a failed sync after 10 s
// (workerBackOffPeriod), not at its next resync.
const syncErrorRetry = 10 * time.Second

func (s *podSync) requeueIn(d time.Duration) {
	if d <= 0 {
		d = 10 * time.Millisecond
	}
	if s.res.requeue == 0 || d < s.res.requeue {
		s.res.requeue = d
	}
}

func backoffKey(uid types.UID, container string) string {
	return string(uid) + "/" + container
}

// backoffLeft is what is left of key's pull or create back-off at now:
// the back-off measured from the failure that began it.
func (w *worker) backoffLeft(key string, now time.Time) time.Duration {
	d := w.e.backoff.Get(key)
	if at, ok := w.failedAt[key]; ok {
		d -= now.Sub(at)
	}
	return d
}
