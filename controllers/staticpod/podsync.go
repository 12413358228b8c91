package staticpod

import (
	"context"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// podSync is one sync of the desired version of one static pod.
type podSync struct {
	w  *worker
	sp *manifest.StaticPod
	// pods are the runtime's sandboxes of this version; cur the one in use;
	// dead the dead sandbox kept for its containers' last states.
	pods    []mruntime.Pod
	cur     *mruntime.Pod
	dead    *mruntime.Pod
	res     result
	waiting map[string]podstate.Waiting
	probes  map[string]podstate.Probe
	message string
}

func (s *podSync) run(ctx context.Context) (result, error) {
	s.w.learnAttempts(s.sp.Pod.UID, s.pods)
	s.w.pruneKilled(s.pods)
	newest := newestSandbox(s.pods, false)
	if newest != nil && s.finished(newest) {
		return s.finish(ctx, newest)
	}
	s.cur = newestSandbox(s.pods, true)
	s.dead = s.keptDead()
	for i := range s.pods {
		p := &s.pods[i]
		if s.cur != nil && p.SandboxID == s.cur.SandboxID {
			continue
		}
		if s.dead != nil && p.SandboxID == s.dead.SandboxID {
			if err := s.stopDead(ctx); err != nil {
				return s.res, err
			}
			continue
		}
		// A dead sandbox no longer needed or an extra one: its data stays,
		// its attempts are remembered.
		if err := s.w.stopPod(ctx, p, graceOf(s.sp, p)); err != nil {
			return s.res, err
		}
		s.res.acted = true
	}
	if s.cur == nil {
		if err := s.runSandbox(ctx); err != nil {
			s.publish(nil)
			return s.res, err
		}
	}
	s.restartOnChange(ctx)
	if !s.waitForStartOrder() {
		s.syncContainers(ctx)
	}
	s.removeOldAttempts(ctx)
	s.probe(ctx)
	s.publish(s.cur)
	return s.res, nil
}

// newestSandbox returns the most recently created sandbox (only ready ones
// if ready), or nil.
func newestSandbox(pods []mruntime.Pod, ready bool) *mruntime.Pod {
	var out *mruntime.Pod
	for i := range pods {
		p := &pods[i]
		if (!ready || p.Ready) && (out == nil || p.CreatedAt.After(out.CreatedAt)) {
			out = p
		}
	}
	return out
}

// finished reports whether the pod reached Succeeded or Failed: under
// Never, an init container failed, every app container exited, or the
// sandbox died after containers ran; under OnFailure, every app container
// succeeded. Such a pod is never started again.
func (s *podSync) finished(p *mruntime.Pod) bool {
	spec := &s.sp.Pod.Spec
	if spec.RestartPolicy == corev1.RestartPolicyAlways {
		return false
	}
	never := spec.RestartPolicy == corev1.RestartPolicyNever
	if never && (!p.Ready && len(p.Containers) > 0 || initFailed(spec, p)) {
		return true
	}
	for _, c := range spec.Containers {
		l := p.Latest(c.Name)
		if l == nil || l.State != mruntime.ContainerExited {
			return false
		}
		if !never && (l.ExitCode != 0 || s.w.livenessKilled[l.ID]) {
			return false
		}
	}
	return len(spec.Containers) > 0
}

// initFailed reports whether the latest attempt of an init container
// exited with an error.
func initFailed(spec *corev1.PodSpec, p *mruntime.Pod) bool {
	for _, c := range spec.InitContainers {
		if l := p.Latest(c.Name); l != nil && l.State == mruntime.ContainerExited && l.ExitCode != 0 {
			return true
		}
	}
	return false
}

// finish stops the sandbox of a finished pod (its IP and host ports are
// freed) but keeps its records, so the mirror keeps the final status.
func (s *podSync) finish(ctx context.Context, last *mruntime.Pod) (result, error) {
	grace := graceOf(s.sp, last)
	for i := range s.pods {
		p := &s.pods[i]
		if p.SandboxID == last.SandboxID {
			continue
		}
		if err := s.w.stopPod(ctx, p, grace); err != nil {
			return s.res, err
		}
		s.res.acted = true
	}
	running := slices.ContainsFunc(last.Containers, func(c mruntime.Container) bool {
		return c.State == mruntime.ContainerRunning || c.State == mruntime.ContainerUnknown
	})
	if last.Ready || running {
		s.w.logger().Info("Pod finished; stopping its sandbox", "uid", last.UID, "sandbox", last.SandboxID)
		if err := s.w.e.cfg.Runtime.StopSandbox(ctx, last.SandboxID, grace); err != nil {
			return s.res, fmt.Errorf("stopping sandbox %s of finished pod %s: %w", last.SandboxID, s.sp.Key(), err)
		}
		s.res.acted = true
	}
	if s.w.e.cfg.Prober != nil {
		s.w.e.cfg.Prober.RemovePod(s.sp.Pod.UID)
	}
	s.publish(last)
	return s.res, nil
}

// runSandbox makes a new sandbox, recording the attempt numbers so far.
func (s *podSync) runSandbox(ctx context.Context) error {
	pod := s.sp.Pod
	if a := s.w.attempts[pod.UID]; len(a) > 0 {
		pod = pod.DeepCopy()
		pod.Annotations = maps.Clone(pod.Annotations)
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[mruntime.AnnotationAttempts] = encodeAttempts(a)
	}
	s.res.acted = true
	id, err := s.w.e.cfg.Runtime.RunSandbox(ctx, pod)
	if err != nil {
		s.message = fmt.Sprintf("creating pod sandbox: %v", err)
		for _, c := range s.sp.Pod.Spec.Containers {
			s.waiting[c.Name] = podstate.Waiting{Reason: "ContainerCreating"}
		}
		return fmt.Errorf("creating sandbox of pod %s: %w", s.sp.Key(), err)
	}
	s.w.logger().Info("Started pod sandbox", "uid", pod.UID, "sandbox", id)
	s.cur = &mruntime.Pod{UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name, SandboxID: id, Ready: true,
		CreatedAt: s.w.e.cfg.Clock.Now()}
	return nil
}

// publish records what runs for the pod: p is the sandbox in use (or the
// stopped one of a finished pod), nil if none.
func (s *podSync) publish(p *mruntime.Pod) {
	if last := s.w.published; p != nil && last != nil && last.SandboxID != p.SandboxID {
		s.w.previous = last
	}
	if p != nil {
		s.w.published = p
	}
	p = s.carryOver(p)
	st := podstate.State{UID: s.sp.Pod.UID, Pod: p, Waiting: s.waiting, Message: s.message, Probes: s.probes}
	s.w.e.cfg.States.Set(s.sp.Key(), st)
}

// carryOver adds to a new sandbox p, for each container it has no exited
// attempt of yet, the last attempt of the sandbox before (the dead one kept
// in the runtime, else the one published before; as exited, with the
// container waiting if p has no attempt of it): the mirror keeps its
// restartCount and lastState while the pod gets a new sandbox, also after a
// restart of mirrorlet.
func (s *podSync) carryOver(p *mruntime.Pod) *mruntime.Pod {
	old := s.w.previous
	if s.dead != nil {
		old = s.dead
	}
	if p == nil || old == nil || old.UID != p.UID || old.SandboxID == p.SandboxID {
		return p
	}
	out := *p
	out.Containers = slices.Clone(p.Containers)
	for _, c := range append(slices.Clone(s.sp.Pod.Spec.InitContainers), s.sp.Pod.Spec.Containers...) {
		prev, cur := old.Latest(c.Name), p.Latest(c.Name)
		if prev == nil || hasExited(p, c.Name) || cur != nil && cur.Attempt <= prev.Attempt {
			continue
		}
		carried := *prev
		carried.State = mruntime.ContainerExited
		out.Containers = append(out.Containers, carried)
		if _, ok := s.waiting[c.Name]; !ok && cur == nil {
			s.waiting[c.Name] = podstate.Waiting{Reason: "ContainerCreating"}
		}
	}
	return &out
}

// keptDead returns the newest dead sandbox (older than the one in use)
// while it is needed: while the sandbox in use has no exited attempt of one
// of its containers, its last attempts are their lastState (and their logs
// stay for kubectl logs --previous), as the kubelet keeps a dead sandbox's
// containers. nil when none is needed.
func (s *podSync) keptDead() *mruntime.Pod {
	var dead *mruntime.Pod
	for i := range s.pods {
		p := &s.pods[i]
		if p.Ready || s.cur != nil && !p.CreatedAt.Before(s.cur.CreatedAt) {
			continue
		}
		if dead == nil || p.CreatedAt.After(dead.CreatedAt) {
			dead = p
		}
	}
	if dead == nil || s.cur == nil {
		return dead
	}
	for _, c := range dead.Containers {
		if !hasExited(s.cur, c.Name) {
			return dead
		}
	}
	return nil
}

// stopDead stops what still runs in the kept dead sandbox, keeping its
// records.
func (s *podSync) stopDead(ctx context.Context) error {
	running := slices.ContainsFunc(s.dead.Containers, func(c mruntime.Container) bool {
		return c.State == mruntime.ContainerRunning || c.State == mruntime.ContainerUnknown
	})
	if !running {
		return nil
	}
	s.w.logger().Info("Stopping dead sandbox; keeping its containers' last states", "uid", s.dead.UID, "sandbox", s.dead.SandboxID)
	s.res.acted = true
	if err := s.w.e.cfg.Runtime.StopSandbox(ctx, s.dead.SandboxID, graceOf(s.sp, s.dead)); err != nil {
		return fmt.Errorf("stopping dead sandbox %s of pod %s: %w", s.dead.SandboxID, s.sp.Key(), err)
	}
	return nil
}

// hasExited reports whether p holds an exited attempt of container name.
func hasExited(p *mruntime.Pod, name string) bool {
	return slices.ContainsFunc(p.Containers, func(c mruntime.Container) bool {
		return c.Name == name && c.State == mruntime.ContainerExited
	})
}

// removeOldAttempts removes exited attempts older than the latest two of
// each container (the latest exited one is lastState in pod status).
func (s *podSync) removeOldAttempts(ctx context.Context) {
	byName := map[string][]mruntime.Container{}
	for _, c := range s.cur.Containers {
		byName[c.Name] = append(byName[c.Name], c)
	}
	for _, cs := range byName {
		slices.SortFunc(cs, func(a, b mruntime.Container) int { return int(b.Attempt) - int(a.Attempt) })
		for _, c := range cs[min(2, len(cs)):] {
			if c.State != mruntime.ContainerExited {
				continue
			}
			if err := s.w.e.cfg.Runtime.RemoveContainer(ctx, c.ID); err != nil {
				s.w.logger().Error(err, "Removing old container failed", "container", c.Name, "id", c.ID)
			}
			s.res.acted = true
		}
	}
}
