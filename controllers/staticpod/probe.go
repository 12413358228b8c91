package staticpod

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/prober"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// probe tells the prober what runs, reads its results into the pod's state
// and kills the containers whose liveness probe failed; the next sync
// restarts them as restartPolicy says.
func (s *podSync) probe(ctx context.Context) {
	p := s.w.e.cfg.Prober
	if p == nil {
		return
	}
	running := runningAttempts(s.cur, s.sp.Pod.Spec.HostNetwork)
	p.UpdatePod(s.sp.Pod, running)
	s.probes = make(map[string]podstate.Probe, len(running))
	for _, r := range running {
		st := p.Status(s.sp.Pod.UID, r.ID)
		if st.LivenessFailed && !s.w.livenessKilled[r.ID] {
			s.kill(ctx, r, st)
			continue
		}
		s.probes[r.ID] = podstate.Probe{Started: st.Started, Ready: st.Ready, Pending: st.Pending}
	}
}

// runningAttempts lists the running app containers of the sandbox.
func runningAttempts(p *mruntime.Pod, hostNetwork bool) []prober.Running {
	ip := p.IP
	if hostNetwork {
		ip = ""
	}
	var out []prober.Running
	for _, c := range p.Containers {
		if c.State == mruntime.ContainerRunning && !c.Init {
			out = append(out, prober.Running{Name: c.Name, ID: c.ID, StartedAt: c.StartedAt, PodIP: ip})
		}
	}
	return out
}

// kill stops a container whose liveness probe failed, with the probe's
// grace period if it has one, else the pod's.
func (s *podSync) kill(ctx context.Context, r prober.Running, st prober.Status) {
	grace := graceOf(s.sp, nil)
	if st.KillGrace != nil {
		grace = *st.KillGrace
	}
	s.w.logger().Info("Killing container that failed its liveness probe", "container", r.Name, "id", r.ID,
		"grace", grace, "message", st.Message)
	s.w.e.cfg.Events.Event(s.sp.Key(), r.Name, corev1.EventTypeNormal, "Killing",
		fmt.Sprintf("Container %s failed liveness probe, will be restarted", r.Name))
	if err := s.w.e.cfg.Runtime.StopContainer(ctx, r.ID, grace); err != nil {
		s.w.logger().Error(err, "Killing container failed", "container", r.Name, "id", r.ID)
		s.requeueIn(time.Second)
		return
	}
	s.w.livenessKilled[r.ID] = true
	s.res.acted = true
}

// pruneKilled forgets the liveness kills of containers no longer listed.
func (w *worker) pruneKilled(pods []mruntime.Pod) {
	if len(w.livenessKilled) == 0 {
		return
	}
	listed := map[string]bool{}
	for _, p := range pods {
		for _, c := range p.Containers {
			listed[c.ID] = true
		}
	}
	for id := range w.livenessKilled {
		if !listed[id] {
			delete(w.livenessKilled, id)
		}
	}
}
