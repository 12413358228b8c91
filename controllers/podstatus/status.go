package podstatus

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// ConditionManifestValid is False while the static pod's manifest is
// invalid and its last good version keeps running, or while a part of it
// is ignored (a start-order problem) and the pod runs regardless; the
// message says which.
const ConditionManifestValid corev1.PodConditionType = "mirrorlet.io/ManifestValid"

// Input is what pod status is computed from.
type Input struct {
	Spec     *corev1.PodSpec
	State    podstate.State
	HasState bool
	Problems []desired.Problem
	// LogDir, when set, gives the LogsWritable condition.
	LogDir LogDirStatus
	// Have is the mirror's current status: transition times and QOS class
	// are kept from it.
	Have        corev1.PodStatus
	HostIP      string
	RuntimeName string
	Now         time.Time
	// Annotations are the static pod's: they say when a pinned revision runs.
	Annotations map[string]string
	// Generation is the mirror's metadata.generation, reported as
	// observedGeneration (0 when there is no mirror).
	Generation int64
}

// Compute turns runtime state into pod status. Times are truncated to
// seconds, as the API stores them, so an unchanged state compares equal.
func Compute(in Input) corev1.PodStatus {
	var pod *mruntime.Pod
	if in.HasState {
		pod = in.State.Pod
	}
	st := corev1.PodStatus{QOSClass: in.Have.QOSClass, HostIP: in.HostIP, ObservedGeneration: in.Generation}
	if in.HostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: in.HostIP}}
	}
	if pod != nil {
		st.StartTime = mtime(pod.CreatedAt)
		ip := pod.IP
		if in.Spec.HostNetwork || ip == "" {
			ip = in.HostIP
		}
		if ip != "" {
			st.PodIP, st.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		}
	}
	st.InitContainerStatuses = containerStatuses(in.Spec.InitContainers, pod, in, true)
	st.ContainerStatuses = containerStatuses(in.Spec.Containers, pod, in, false)
	st.Phase = phase(in.Spec, st, pod != nil)
	if in.HasState && in.State.Message != "" {
		st.Message = in.State.Message
	}
	st.Conditions = conditions(in, st, pod)
	return st
}

func mtime(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t).Rfc3339Copy()
	return &mt
}

func containerStatuses(specs []corev1.Container, pod *mruntime.Pod, in Input, init bool) []corev1.ContainerStatus {
	if len(specs) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, 0, len(specs))
	for i := range specs {
		c := &specs[i]
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
		var latest, previous *mruntime.Container
		if pod != nil {
			latest, previous = attempts(pod, c.Name)
		}
		waiting, isWaiting := in.State.Waiting[c.Name]
		switch {
		case latest == nil:
			if !isWaiting {
				waiting = podstate.Waiting{Reason: "ContainerCreating"}
			}
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waiting.Reason, Message: waiting.Message}
		case latest.State == mruntime.ContainerRunning:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: *orZero(mtime(latest.StartedAt))}
			started, ready := probed(in.State, latest.ID, in.Have, in.RuntimeName)
			cs.Ready = !init && ready
			cs.Started = ptr.To(started)
		case latest.State == mruntime.ContainerExited && isWaiting:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waiting.Reason, Message: waiting.Message}
			previous = latest
		case latest.State == mruntime.ContainerExited:
			cs.State.Terminated = terminated(latest)
			cs.Ready = init && latest.ExitCode == 0
			cs.Started = ptr.To(false)
		default:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		}
		if latest != nil {
			cs.RestartCount = int32(latest.Attempt)
			cs.ContainerID = in.RuntimeName + "://" + latest.ID
			cs.ImageID = latest.ImageRef
		}
		if previous != nil {
			cs.LastTerminationState.Terminated = terminated(previous)
		}
		out = append(out, cs)
	}
	return out
}

// probed returns what the probes say of a running container attempt:
// started and ready when no prober runs; not started or ready when it has
// no result for it. While its probes have no result yet, what the mirror
// showed for this same attempt (container ID) holds: a restart of
// mirrorlet does not turn a ready container unready.
func probed(st podstate.State, id string, have corev1.PodStatus, runtimeName string) (started, ready bool) {
	if st.Probes == nil {
		return true, true
	}
	p, ok := st.Probes[id]
	if !ok {
		return false, false
	}
	if p.Pending {
		for _, cs := range have.ContainerStatuses {
			if cs.ContainerID == runtimeName+"://"+id && cs.State.Running != nil {
				return cs.Started != nil && *cs.Started, cs.Ready
			}
		}
	}
	return p.Started, p.Ready
}

// attempts returns the latest attempt of a container and the latest exited
// attempt before it.
func attempts(pod *mruntime.Pod, name string) (latest, previous *mruntime.Container) {
	latest = pod.Latest(name)
	if latest == nil {
		return nil, nil
	}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if c.Name == name && c != latest && c.State == mruntime.ContainerExited &&
			(previous == nil || c.Attempt > previous.Attempt) {
			previous = c
		}
	}
	return latest, previous
}

func terminated(c *mruntime.Container) *corev1.ContainerStateTerminated {
	reason := c.Reason
	if reason == "" {
		reason = "Error"
		if c.ExitCode == 0 {
			reason = "Completed"
		}
	}
	return &corev1.ContainerStateTerminated{
		ExitCode:   c.ExitCode,
		Reason:     reason,
		Message:    c.Message,
		StartedAt:  *orZero(mtime(c.StartedAt)),
		FinishedAt: *orZero(mtime(c.FinishedAt)),
	}
}

func orZero(t *metav1.Time) *metav1.Time {
	if t == nil {
		return &metav1.Time{}
	}
	return t
}

// phase follows the kubelet's getPhase for what mirrorlet reports.
func phase(spec *corev1.PodSpec, st corev1.PodStatus, running bool) corev1.PodPhase {
	if !running {
		return corev1.PodPending
	}
	if p, done := initPhase(spec, st); !done {
		return p
	}
	return appPhase(spec.RestartPolicy, st.ContainerStatuses)
}

// initPhase returns the phase while init containers have not all succeeded.
func initPhase(spec *corev1.PodSpec, st corev1.PodStatus) (corev1.PodPhase, bool) {
	for _, cs := range st.InitContainerStatuses {
		term := cs.State.Terminated
		switch {
		case term != nil && term.ExitCode != 0 && spec.RestartPolicy == corev1.RestartPolicyNever:
			return corev1.PodFailed, false
		case term == nil || term.ExitCode != 0:
			return corev1.PodPending, false
		}
	}
	return "", true
}

func appPhase(policy corev1.RestartPolicy, statuses []corev1.ContainerStatus) corev1.PodPhase {
	var run, waiting, failed int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			run++
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
		case cs.State.Terminated != nil, cs.LastTerminationState.Terminated != nil:
			failed++ // a crash-looping container counts as stopped
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case run > 0, policy == corev1.RestartPolicyAlways:
		return corev1.PodRunning
	case failed == 0:
		return corev1.PodSucceeded
	case policy == corev1.RestartPolicyNever:
		return corev1.PodFailed
	default:
		return corev1.PodRunning
	}
}

func conditions(in Input, st corev1.PodStatus, pod *mruntime.Pod) []corev1.PodCondition {
	containersReady := containersReadyCondition(st)
	ready := containersReady
	ready.Type = corev1.PodReady
	conds := []corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: boolStatus(pod != nil && pod.Ready)},
		initializedCondition(st),
		containersReady,
		ready,
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		manifestCondition(in.Problems),
	}
	if c, ok := rolledBackCondition(in.Annotations); ok {
		conds = append(conds, c)
	}
	if in.LogDir != nil {
		conds = append(conds, logsCondition(in.LogDir))
	}
	for i := range conds {
		c := &conds[i]
		c.ObservedGeneration = in.Generation
		c.LastTransitionTime = *mtime(in.Now)
		for _, old := range in.Have.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	return conds
}

// initializedCondition is the pod's Initialized condition with the
// kubelet's reason and message (its GeneratePodInitializedCondition).
func initializedCondition(st corev1.PodStatus) corev1.PodCondition {
	c := corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}
	if st.Phase == corev1.PodSucceeded {
		c.Reason = "PodCompleted"
		return c
	}
	var incomplete []string
	for _, cs := range st.InitContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			incomplete = append(incomplete, cs.Name)
		}
	}
	if len(incomplete) > 0 {
		c.Status, c.Reason = corev1.ConditionFalse, "ContainersNotInitialized"
		c.Message = fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incomplete, " "))
	}
	return c
}

// containersReadyCondition is the pod's ContainersReady condition with
// the kubelet's reasons and messages (its
// GenerateContainersReadyCondition); Ready copies it.
func containersReadyCondition(st corev1.PodStatus) corev1.PodCondition {
	c := corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}
	var unready []string
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	switch {
	case len(st.ContainerStatuses) == 0:
		c.Status, c.Reason = corev1.ConditionFalse, "UnknownContainerStatuses"
	case st.Phase == corev1.PodSucceeded:
		c.Status, c.Reason = corev1.ConditionFalse, "PodCompleted"
	case st.Phase == corev1.PodFailed:
		c.Status, c.Reason = corev1.ConditionFalse, "PodFailed"
	case len(unready) > 0:
		c.Status, c.Reason = corev1.ConditionFalse, "ContainersNotReady"
		c.Message = fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	}
	return c
}

func manifestCondition(problems []desired.Problem) corev1.PodCondition {
	if len(problems) == 0 {
		return corev1.PodCondition{Type: ConditionManifestValid, Status: corev1.ConditionTrue}
	}
	var lastGood, ignored []string
	for _, p := range problems {
		if p.VersionRuns {
			ignored = append(ignored, p.Err.Error())
		} else {
			lastGood = append(lastGood, p.Err.Error())
		}
	}
	// A start-order problem says itself what is ignored; it is about the
	// version that runs (the manifest's, a last good or a pinned one).
	msg := "the static pod runs regardless: "
	if len(lastGood) > 0 {
		msg = "the last good version keeps running: "
	}
	return corev1.PodCondition{
		Type:    ConditionManifestValid,
		Status:  corev1.ConditionFalse,
		Reason:  "InvalidManifest",
		Message: msg + strings.Join(append(lastGood, ignored...), "; "),
	}
}

func boolStatus(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}
