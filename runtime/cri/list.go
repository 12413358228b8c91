package cri

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// ListPods implements mruntime.Runtime: every sandbox carrying
// mirrorlet's labels, with all its containers.
func (r *Runtime) ListPods(ctx context.Context) ([]mruntime.Pod, error) {
	return r.list(ctx, managedSelector(), true)
}

// ListPodsOf implements mruntime.UIDLister: the sandboxes of one pod UID.
func (r *Runtime) ListPodsOf(ctx context.Context, uid types.UID) ([]mruntime.Pod, error) {
	sel := managedSelector()
	sel[LabelPodUID] = string(uid)
	return r.list(ctx, sel, false)
}

// list returns the sandboxes and containers matching sel; all says sel
// covers every managed object, so cache entries of others can be dropped.
func (r *Runtime) list(ctx context.Context, sel map[string]string, all bool) ([]mruntime.Pod, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	sbs, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
	if err != nil {
		return nil, fmt.Errorf("listing pod sandboxes: %w", err)
	}
	cs, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	pods := make([]mruntime.Pod, 0, len(sbs.Items))
	index := map[string]int{}
	live := map[string]bool{}
	for _, sb := range sbs.Items {
		live[sb.Id] = true
		p := mruntime.Pod{
			UID:       types.UID(sb.Labels[LabelPodUID]),
			Namespace: sb.Labels[LabelPodNamespace],
			Name:      sb.Labels[LabelPodName],
			SandboxID: sb.Id,
			Ready:     sb.State == runtimeapi.PodSandboxState_SANDBOX_READY,
			CreatedAt: time.Unix(0, sb.CreatedAt),
		}
		if g, err := strconv.ParseInt(sb.Annotations[AnnotationGrace], 10, 64); err == nil && g >= 0 {
			d := time.Duration(g) * time.Second
			p.Grace = &d
		}
		if a := sb.Annotations[mruntime.AnnotationAttempts]; a != "" {
			p.Annotations = map[string]string{mruntime.AnnotationAttempts: a}
		}
		if p.Ready {
			p.IP = r.sandboxIP(ctx, sb.Id)
		}
		index[sb.Id] = len(pods)
		pods = append(pods, p)
	}
	r.learnUIDs(sbs.Items, cs.Containers)
	for _, c := range cs.Containers {
		live[c.Id] = true
		i, ok := index[c.PodSandboxId]
		if !ok {
			continue
		}
		st, err := r.containerStatus(ctx, c)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		pods[i].Containers = append(pods[i].Containers, toContainer(c, st))
	}
	if all {
		r.forget(live)
	}
	return pods, nil
}

// containerStatus returns the full status of c, from the cache while c's
// state is unchanged.
func (r *Runtime) containerStatus(ctx context.Context, c *runtimeapi.Container) (*runtimeapi.ContainerStatus, error) {
	r.mu.Lock()
	st, ok := r.statuses[c.Id]
	r.mu.Unlock()
	if ok && st.State == c.State {
		return st, nil
	}
	resp, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
	if err != nil {
		return nil, fmt.Errorf("reading status of container %s: %w", c.Id, err)
	}
	st = resp.Status
	if st == nil {
		return nil, fmt.Errorf("reading status of container %s: empty answer", c.Id)
	}
	if st.State == runtimeapi.ContainerState_CONTAINER_EXITED && st.Message == "" && st.Metadata != nil {
		st.Message = readTerminationMessage(r.terminationLogPath(c.Labels[LabelPodUID], st.Metadata.Name, st.Metadata.Attempt))
	}
	if st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		r.mu.Lock()
		r.statuses[c.Id] = st
		r.mu.Unlock()
	}
	return st, nil
}

func (r *Runtime) sandboxIP(ctx context.Context, id string) string {
	r.mu.Lock()
	ip, ok := r.ips[id]
	r.mu.Unlock()
	if ok {
		return ip
	}
	resp, err := r.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		return ""
	}
	if resp.GetStatus().GetLinux().GetNamespaces().GetOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE {
		ip = r.opts.NodeIP
	} else {
		ip = resp.GetStatus().GetNetwork().GetIp()
	}
	r.mu.Lock()
	r.ips[id] = ip
	r.mu.Unlock()
	return ip
}

// learnUIDs remembers the pod UID of every listed sandbox and container,
// for their events that come without labels (a deleted container's).
func (r *Runtime) learnUIDs(sbs []*runtimeapi.PodSandbox, cs []*runtimeapi.Container) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sb := range sbs {
		r.eventUIDs[sb.Id] = types.UID(sb.Labels[LabelPodUID])
	}
	for _, c := range cs {
		r.eventUIDs[c.Id] = types.UID(c.Labels[LabelPodUID])
	}
}

// forget drops cache entries of sandboxes and containers that are gone.
func (r *Runtime) forget(live map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.statuses {
		if !live[id] {
			delete(r.statuses, id)
		}
	}
	for id := range r.ips {
		if !live[id] {
			delete(r.ips, id)
		}
	}
	for id := range r.eventUIDs {
		if !live[id] {
			delete(r.eventUIDs, id)
		}
	}
}

func toContainer(c *runtimeapi.Container, st *runtimeapi.ContainerStatus) mruntime.Container {
	out := mruntime.Container{
		ID:        c.Id,
		Name:      c.Labels[LabelContainer],
		Attempt:   c.GetMetadata().GetAttempt(),
		Init:      c.Labels[LabelInit] == "true",
		State:     toState(st.State),
		CreatedAt: time.Unix(0, st.CreatedAt),
		ExitCode:  st.ExitCode,
		Reason:    st.Reason,
		Message:   st.Message,
		Image:     c.GetImage().GetImage(),
		ImageRef:  st.ImageRef,
	}
	if out.Name == "" {
		out.Name = c.GetMetadata().GetName()
	}
	if img := c.Annotations[AnnotationImage]; img != "" {
		out.Image = img
	}
	if st.StartedAt > 0 {
		out.StartedAt = time.Unix(0, st.StartedAt)
	}
	if st.FinishedAt > 0 {
		out.FinishedAt = time.Unix(0, st.FinishedAt)
	}
	return out
}

func toState(s runtimeapi.ContainerState) mruntime.ContainerState {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return mruntime.ContainerCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return mruntime.ContainerRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return mruntime.ContainerExited
	default:
		return mruntime.ContainerUnknown
	}
}

// maxTerminationMessage is the most of a termination-message file that is
// reported, as in the kubelet.
const maxTerminationMessage = 4096

func readTerminationMessage(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	b, _ := io.ReadAll(io.LimitReader(f, maxTerminationMessage))
	return string(b)
}
