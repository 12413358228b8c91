package staticpod

import (
	"context"

	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

const defaultGrace = 30 * time.Second

// Reconcile makes the runtime run what the desired set says for one key.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	key := req.NamespacedName
	log := r.cfg.Log.WithValues("pod", key)
	all, err := r.cfg.Runtime.ListPods(ctx)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("listing runtime pods: %w", err)
	}
	var pods []mruntime.Pod
	for _, p := range all {
		if p.Namespace == key.Namespace && p.Name == key.Name {
			pods = append(pods, p)
		}
	}
	sp, ok := r.cfg.Desired.Get(key)
	if !ok {
		if !r.cfg.Desired.Synced() {
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		if err := r.stopAll(ctx, pods, ""); err != nil {
			return reconcile.Result{}, err
		}
		r.cfg.States.Delete(key)
		return reconcile.Result{}, nil
	}
	r.remember(key, sp)
	// Replace: stop every other version (and extra sandboxes) first.
	current := pickCurrent(pods, sp.Pod.UID)
	keep := ""
	if current != nil {
		keep = current.SandboxID
	}
	if err := r.stopAll(ctx, pods, keep); err != nil {
		return reconcile.Result{}, err
	}
	s := &podSync{r: r, sp: sp, pod: current, log: log, waiting: map[string]podstate.Waiting{}}
	result, err := s.run(ctx)
	r.publish(ctx, key, s)
	return result, err
}

// pickCurrent returns the newest ready sandbox of version uid, if any.
func pickCurrent(pods []mruntime.Pod, uid types.UID) *mruntime.Pod {
	var cur *mruntime.Pod
	for i := range pods {
		p := &pods[i]
		if p.UID == uid && p.Ready && (cur == nil || p.CreatedAt.After(cur.CreatedAt)) {
			cur = p
		}
	}
	return cur
}

// stopAll stops every pod but the sandbox keep, each with its grace period.
func (r *Reconciler) stopAll(ctx context.Context, pods []mruntime.Pod, keep string) error {
	for _, p := range pods {
		if p.SandboxID == keep {
			continue
		}
		grace := r.grace(&p)
		r.cfg.Log.Info("Stopping pod", "pod", types.NamespacedName{Namespace: p.Namespace, Name: p.Name},
			"uid", p.UID, "sandbox", p.SandboxID, "grace", grace)
		if err := r.cfg.Runtime.StopPod(ctx, p.SandboxID, grace); err != nil {
			return fmt.Errorf("stopping pod %s/%s sandbox %s: %w", p.Namespace, p.Name, p.SandboxID, err)
		}
	}
	return nil
}

func (r *Reconciler) remember(key types.NamespacedName, sp *manifest.StaticPod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.uids[sp.Pod.UID] = key
	if g := sp.Pod.Spec.TerminationGracePeriodSeconds; g != nil {
		r.graces[sp.Pod.UID] = time.Duration(*g) * time.Second
	}
}

// grace is the termination grace period of a running pod: from its
// manifest when mirrorlet has seen it, else as the runtime recorded it.
func (r *Reconciler) grace(p *mruntime.Pod) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g, ok := r.graces[p.UID]; ok {
		return g
	}
	if p.Grace != nil {
		return *p.Grace
	}
	return defaultGrace
}

// publish records what now runs for key.
func (r *Reconciler) publish(ctx context.Context, key types.NamespacedName, s *podSync) {
	st := podstate.State{UID: s.sp.Pod.UID, Waiting: s.waiting, Message: s.message}
	if s.pod != nil {
		if s.acted {
			if pods, err := r.cfg.Runtime.ListPods(ctx); err == nil {
				s.pod = pickCurrent(pods, s.sp.Pod.UID)
			}
		}
		st.Pod = s.pod
	}
	r.cfg.States.Set(key, st)
}

// podSync is one sync of one static pod.
type podSync struct {
	r       *Reconciler
	sp      *manifest.StaticPod
	pod     *mruntime.Pod
	log     logr.Logger
	waiting map[string]podstate.Waiting
	message string
	// acted is true once the sync changed something in the runtime.
	acted bool
	// requeue is the earliest time a back-off ends.
	requeue time.Duration
}

func (s *podSync) run(ctx context.Context) (reconcile.Result, error) {
	if s.pod == nil {
		id, err := s.r.cfg.Runtime.RunSandbox(ctx, s.sp.Pod)
		if err != nil {
			s.message = fmt.Sprintf("creating pod sandbox: %v", err)
			for _, c := range s.sp.Pod.Spec.Containers {
				s.waiting[c.Name] = podstate.Waiting{Reason: "ContainerCreating"}
			}
			return reconcile.Result{}, fmt.Errorf("creating sandbox of pod %s: %w", s.sp.Key(), err)
		}
		s.log.Info("Started pod sandbox", "uid", s.sp.Pod.UID, "sandbox", id)
		s.pod = &mruntime.Pod{UID: s.sp.Pod.UID, Namespace: s.sp.Pod.Namespace, Name: s.sp.Pod.Name, SandboxID: id, Ready: true}
		s.acted = true
	}
	spec := &s.sp.Pod.Spec
	if s.syncInit(ctx, spec) {
		for i := range spec.Containers {
			s.syncContainer(ctx, &spec.Containers[i], spec.RestartPolicy)
		}
	} else {
		for _, c := range spec.Containers {
			s.waiting[c.Name] = podstate.Waiting{Reason: "PodInitializing"}
		}
	}
	s.removeOldAttempts(ctx)
	if s.requeue > 0 {
		return reconcile.Result{RequeueAfter: s.requeue}, nil
	}
	return reconcile.Result{}, nil
}

// syncInit runs init containers in order and reports whether all completed.
func (s *podSync) syncInit(ctx context.Context, spec *corev1.PodSpec) bool {
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		latest := s.pod.Latest(c.Name)
		switch {
		case latest == nil:
			s.start(ctx, c, 0)
			return false
		case latest.State == mruntime.ContainerExited && latest.ExitCode == 0:
			continue
		case latest.State == mruntime.ContainerExited:
			if spec.RestartPolicy != corev1.RestartPolicyNever {
				s.restart(ctx, c, latest)
			}
			return false
		default:
			return false
		}
	}
	return true
}

// syncContainer starts or restarts one app container as restartPolicy says.
func (s *podSync) syncContainer(ctx context.Context, c *corev1.Container, policy corev1.RestartPolicy) {
	latest := s.pod.Latest(c.Name)
	switch {
	case latest == nil:
		s.start(ctx, c, 0)
	case latest.State != mruntime.ContainerExited:
		return
	case policy == corev1.RestartPolicyAlways,
		policy == corev1.RestartPolicyOnFailure && latest.ExitCode != 0:
		s.restart(ctx, c, latest)
	}
}

// restart starts the next attempt of an exited container unless it is in
// back-off.
func (s *podSync) restart(ctx context.Context, c *corev1.Container, latest *mruntime.Container) {
	id := backoffKey(s.sp.Pod.UID, c.Name)
	b := s.r.backoff
	if b.IsInBackOffSince(id, latest.FinishedAt) {
		left := b.Get(id) - s.r.cfg.Clock.Since(latest.FinishedAt)
		s.waiting[c.Name] = podstate.Waiting{Reason: "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", b.Get(id), c.Name, s.sp.Key())}
		s.requeueIn(left)
		return
	}
	b.Next(id, latest.FinishedAt)
	s.log.Info("Restarting container", "container", c.Name, "exitCode", latest.ExitCode, "attempt", latest.Attempt+1)
	s.start(ctx, c, latest.Attempt+1)
}

// start creates and starts one container attempt, recording why it is
// waiting when that fails.
func (s *podSync) start(ctx context.Context, c *corev1.Container, attempt uint32) {
	pullKey := backoffKey(s.sp.Pod.UID, c.Name) + "/pull"
	b := s.r.backoff
	now := s.r.cfg.Clock.Now()
	if b.IsInBackOffSinceUpdate(pullKey, now) {
		s.waiting[c.Name] = podstate.Waiting{Reason: "ImagePullBackOff",
			Message: fmt.Sprintf("Back-off pulling image %q", c.Image)}
		s.requeueIn(b.Get(pullKey))
		return
	}
	s.acted = true
	id, err := s.r.cfg.Runtime.StartContainer(ctx, s.sp.Pod, s.pod.SandboxID, c, attempt)
	switch {
	case errors.Is(err, mruntime.ErrImagePull):
		b.Next(pullKey, now)
		reason := "ErrImagePull"
		if errors.Is(err, mruntime.ErrImageNeverPull) {
			reason = "ErrImageNeverPull"
		}
		s.waiting[c.Name] = podstate.Waiting{Reason: reason, Message: err.Error()}
		s.requeueIn(b.Get(pullKey))
		s.log.Error(err, "Pulling image failed", "container", c.Name, "image", c.Image)
	case err != nil:
		s.waiting[c.Name] = podstate.Waiting{Reason: "CreateContainerError", Message: err.Error()}
		s.requeueIn(s.r.cfg.BackoffInitial)
		s.log.Error(err, "Starting container failed", "container", c.Name)
	default:
		b.Reset(pullKey)
		s.log.Info("Started container", "container", c.Name, "attempt", attempt, "id", id)
	}
}

func (s *podSync) requeueIn(d time.Duration) {
	if d <= 0 {
		d = 10 * time.Millisecond
	}
	if s.requeue == 0 || d < s.requeue {
		s.requeue = d
	}
}

// removeOldAttempts removes exited attempts older than the latest two of
// each container (the latest exited one is lastState in pod status).
func (s *podSync) removeOldAttempts(ctx context.Context) {
	byName := map[string][]mruntime.Container{}
	for _, c := range s.pod.Containers {
		byName[c.Name] = append(byName[c.Name], c)
	}
	for _, cs := range byName {
		slices.SortFunc(cs, func(a, b mruntime.Container) int { return int(b.Attempt) - int(a.Attempt) })
		for _, c := range cs[min(2, len(cs)):] {
			if c.State != mruntime.ContainerExited {
				continue
			}
			if err := s.r.cfg.Runtime.RemoveContainer(ctx, c.ID); err != nil {
				s.log.Error(err, "Removing old container failed", "container", c.Name, "id", c.ID)
			}
			s.acted = true
		}
	}
}

func backoffKey(uid types.UID, container string) string {
	return string(uid) + "/" + container
}
