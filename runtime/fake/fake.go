package fake

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/clock"

	"github.com/mirrorlet/mirrorlet/runtime"
)

// Runtime is the fake runtime. Create it with New.
type Runtime struct {
	mu            sync.Mutex
	clock         clock.Clock
	nextID        int
	pods          map[string]*runtime.Pod // by sandbox ID
	missingImages sets.Set[string]
	unreachable   bool
	starts        map[types.UID]int
	changes       chan types.UID
	// startFails holds images whose containers fail to start (StartError).
	startFails sets.Set[string]
	// createFails holds images whose containers cannot be created.
	createFails sets.Set[string]
	// removeFails makes StopPod stop sandboxes but not remove them.
	removeFails bool
	// leaveCreated holds images whose next start leaves the container in
	// Created and fails, as a start call that timed out.
	leaveCreated sets.Set[string]
	// stopDelay is how long stopping a running container takes.
	stopDelay time.Duration
	// removedData counts RemovePodData calls by pod UID; data holds the
	// UIDs with data (a sandbox was made, RemovePodData not called since).
	removedData map[types.UID]int
	data        sets.Set[types.UID]
	lists       int
	// stopping counts stops of running containers in progress.
	stopping int
	// execFn scripts ExecSync.
	execFn ExecFunc
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns an empty fake runtime using clk for timestamps (nil: real clock).
func New(clk clock.Clock) *Runtime {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Runtime{
		clock:         clk,
		pods:          map[string]*runtime.Pod{},
		missingImages: sets.New[string](),
		starts:        map[types.UID]int{},
		changes:       make(chan types.UID, 256),
		startFails:    sets.New[string](),
		createFails:   sets.New[string](),
		leaveCreated:  sets.New[string](),
		removedData:   map[types.UID]int{},
		data:          sets.New[types.UID](),
	}
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return "fake" }

// Status implements runtime.Runtime.
func (r *Runtime) Status(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unreachable {
		return errors.New("fake runtime is unreachable")
	}
	return nil
}

// ListPods implements runtime.Runtime.
func (r *Runtime) ListPods(context.Context) ([]runtime.Pod, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unreachable {
		return nil, errors.New("fake runtime is unreachable")
	}
	r.lists++
	out := make([]runtime.Pod, 0, len(r.pods))
	for _, p := range r.pods {
		out = append(out, copyPod(p))
	}
	return out, nil
}

// ListPodsOf implements runtime.UIDLister.
func (r *Runtime) ListPodsOf(_ context.Context, uid types.UID) ([]runtime.Pod, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unreachable {
		return nil, errors.New("fake runtime is unreachable")
	}
	var out []runtime.Pod
	for _, p := range r.pods {
		if p.UID == uid {
			out = append(out, copyPod(p))
		}
	}
	return out, nil
}

// RunSandbox implements runtime.Runtime.
func (r *Runtime) RunSandbox(_ context.Context, pod *corev1.Pod) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unreachable {
		return "", errors.New("fake runtime is unreachable")
	}
	id := r.newID("sandbox")
	r.data.Insert(pod.UID)
	r.pods[id] = &runtime.Pod{
		UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name, SandboxID: id,
		Ready: true, IP: "10.0.0.1", CreatedAt: r.clock.Now(),
	}
	if a := pod.Annotations[runtime.AnnotationAttempts]; a != "" {
		r.pods[id].Annotations = map[string]string{runtime.AnnotationAttempts: a}
	}
	return id, nil
}

// StartContainer implements runtime.Runtime.
func (r *Runtime) StartContainer(_ context.Context, pod *corev1.Pod, sandboxID string, c *corev1.Container, attempt uint32) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unreachable {
		return "", errors.New("fake runtime is unreachable")
	}
	p, ok := r.pods[sandboxID]
	if !ok {
		return "", fmt.Errorf("sandbox %s: %w", sandboxID, runtime.ErrNotFound)
	}
	if r.missingImages.Has(c.Image) {
		if c.ImagePullPolicy == corev1.PullNever {
			return "", fmt.Errorf("%w: container image %q is not present with pull policy of Never", runtime.ErrImageNeverPull, c.Image)
		}
		return "", fmt.Errorf("pulling image %q: %w", c.Image, runtime.ErrImagePull)
	}
	if !p.Ready {
		return "", fmt.Errorf("sandbox %s is not ready", sandboxID)
	}
	for _, o := range p.Containers {
		if o.Name == c.Name && o.Attempt == attempt {
			return "", fmt.Errorf("container %s attempt %d already exists", c.Name, attempt)
		}
	}
	isInit := slices.ContainsFunc(pod.Spec.InitContainers, func(ic corev1.Container) bool { return ic.Name == c.Name })
	now := r.clock.Now()
	id := r.newID("container")
	p.Containers = append(p.Containers, runtime.Container{
		ID: id, Name: c.Name, Attempt: attempt, Init: isInit, State: runtime.ContainerRunning,
		CreatedAt: now, StartedAt: now, Image: c.Image, ImageRef: "sha256:" + c.Image,
	})
	created := &p.Containers[len(p.Containers)-1]
	switch {
	case r.leaveCreated.Has(c.Image):
		r.leaveCreated.Delete(c.Image)
		created.State, created.StartedAt = runtime.ContainerCreated, time.Time{}
		return id, fmt.Errorf("%w: starting container %s: %w", runtime.ErrStartFailed, c.Name, context.DeadlineExceeded)
	case r.createFails.Has(c.Image):
		p.Containers = p.Containers[:len(p.Containers)-1]
		return "", fmt.Errorf("creating container %s: invalid config", c.Name)
	case r.startFails.Has(c.Image):
		created.StartedAt = time.Time{}
		r.exit(created, 128, "StartError")
		created.Message = "exec: no such file or directory"
		return id, fmt.Errorf("starting container %s: %w", c.Name, runtime.ErrStartFailed)
	}
	r.starts[pod.UID]++
	return id, nil
}

// StopContainer implements runtime.Runtime.
func (r *Runtime) StopContainer(ctx context.Context, containerID string, _ time.Duration) error {
	r.mu.Lock()
	c := r.container(containerID)
	running := c != nil && c.State == runtime.ContainerRunning
	delay := r.stopDelay
	r.mu.Unlock()
	if running {
		r.mu.Lock()
		r.stopping++
		r.mu.Unlock()
		err := r.wait(ctx, delay)
		r.mu.Lock()
		r.stopping--
		r.mu.Unlock()
		if err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.container(containerID); c != nil && c.State == runtime.ContainerRunning {
		r.exit(c, 0, "Completed")
	}
	return nil
}

// wait sleeps d of real time (the fake's slow stops) unless ctx ends.
func (r *Runtime) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("stopping container: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// RemoveContainer implements runtime.Runtime.
func (r *Runtime) RemoveContainer(_ context.Context, containerID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pods {
		p.Containers = slices.DeleteFunc(p.Containers, func(c runtime.Container) bool { return c.ID == containerID })
	}
	return nil
}

// StopPod implements runtime.Runtime.
func (r *Runtime) StopPod(ctx context.Context, sandboxID string, grace time.Duration) error {
	if err := r.StopSandbox(ctx, sandboxID, grace); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removeFails {
		return fmt.Errorf("removing sandbox %s: %w: failed precondition", sandboxID, runtime.ErrSandboxNotRemoved)
	}
	delete(r.pods, sandboxID)
	return nil
}

// SetRemoveFails makes StopPod stop sandboxes but fail to remove them, as
// containerd does for a sandbox holding the task of a container whose
// start was cut off.
func (r *Runtime) SetRemoveFails(fails bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeFails = fails
}

// StopSandbox implements runtime.Runtime.
func (r *Runtime) StopSandbox(ctx context.Context, sandboxID string, grace time.Duration) error {
	r.mu.Lock()
	if r.unreachable {
		r.mu.Unlock()
		return errors.New("fake runtime is unreachable")
	}
	var running []string
	if p, ok := r.pods[sandboxID]; ok {
		for _, c := range p.Containers {
			if c.State == runtime.ContainerRunning {
				running = append(running, c.ID)
			}
		}
	}
	r.mu.Unlock()
	for _, id := range running {
		if err := r.StopContainer(ctx, id, grace); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pods[sandboxID]; ok {
		p.Ready, p.IP = false, ""
	}
	return nil
}

// RemovePodData implements runtime.Runtime; it counts the calls.
func (r *Runtime) RemovePodData(_ context.Context, uid types.UID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removedData[uid]++
	r.data.Delete(uid)
	return nil
}

// PodDataUIDs implements runtime.PodDataLister.
func (r *Runtime) PodDataUIDs(context.Context) ([]types.UID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return sets.List(r.data), nil
}

// Changes implements runtime.Runtime.
func (r *Runtime) Changes() <-chan types.UID { return r.changes }

// Exit makes the running container name of the pod with uid exit with
// code, as if it crashed (code != 0) or completed, and announces the change.
func (r *Runtime) Exit(uid types.UID, name string, code int32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pods {
		if p.UID != uid {
			continue
		}
		c := p.Latest(name)
		if c == nil || c.State != runtime.ContainerRunning {
			if !p.Ready {
				continue
			}
			return fmt.Errorf("container %s of pod %s is not running", name, uid)
		}
		reason := "Completed"
		if code != 0 {
			reason = "Error"
		}
		r.exit(c, code, reason)
		r.announce(uid)
		return nil
	}
	return fmt.Errorf("pod %s: %w", uid, runtime.ErrNotFound)
}

// SetStartFails makes containers of image fail to start: each start leaves
// an exited attempt with reason StartError, as containerd does.
func (r *Runtime) SetStartFails(image string, fails bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fails {
		r.startFails.Insert(image)
	} else {
		r.startFails.Delete(image)
	}
}

// SetCreateFails makes the creation of containers of image fail (no
// container is left).
func (r *Runtime) SetCreateFails(image string, fails bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fails {
		r.createFails.Insert(image)
	} else {
		r.createFails.Delete(image)
	}
}

// LeaveCreatedOnce makes the next start of a container of image stop after
// creating it, as a start call that timed out: it stays in Created.
func (r *Runtime) LeaveCreatedOnce(image string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leaveCreated.Insert(image)
}

// SetStopDelay makes every stop of a running container take d of real time.
func (r *Runtime) SetStopDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopDelay = d
}

// KillSandbox makes the sandbox of the pod with uid NotReady, as when its
// pause container is killed; its containers keep running.
func (r *Runtime) KillSandbox(uid types.UID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pods {
		if p.UID == uid && p.Ready {
			p.Ready, p.IP = false, ""
			r.announce(uid)
			return nil
		}
	}
	return fmt.Errorf("ready sandbox of pod %s: %w", uid, runtime.ErrNotFound)
}

// RemovedData returns how often RemovePodData was called for uid.
func (r *Runtime) RemovedData(uid types.UID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removedData[uid]
}

// Stopping returns how many container stops are in progress.
func (r *Runtime) Stopping() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopping
}

// Lists returns how many times ListPods was called.
func (r *Runtime) Lists() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lists
}

func (r *Runtime) announce(uid types.UID) {
	select {
	case r.changes <- uid:
	default:
	}
}

// SetImageMissing makes StartContainer fail with ErrImagePull for image
// (ErrImageNeverPull under imagePullPolicy Never).
func (r *Runtime) SetImageMissing(image string, missing bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if missing {
		r.missingImages.Insert(image)
	} else {
		r.missingImages.Delete(image)
	}
}

// SetUnreachable makes every call fail, as if the runtime were down.
func (r *Runtime) SetUnreachable(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreachable = down
}

// Starts returns how many containers were started for the pod with uid.
func (r *Runtime) Starts(uid types.UID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts[uid]
}

// Pods returns every pod the fake runs, as ListPods does.
func (r *Runtime) Pods() []runtime.Pod {
	pods, _ := r.ListPods(context.Background())
	return pods
}

func (r *Runtime) exit(c *runtime.Container, code int32, reason string) {
	c.State = runtime.ContainerExited
	c.ExitCode = code
	c.Reason = reason
	c.FinishedAt = r.clock.Now()
}

func (r *Runtime) container(id string) *runtime.Container {
	for _, p := range r.pods {
		for i := range p.Containers {
			if p.Containers[i].ID == id {
				return &p.Containers[i]
			}
		}
	}
	return nil
}

func (r *Runtime) newID(prefix string) string {
	r.nextID++
	return prefix + "-" + strconv.Itoa(r.nextID)
}

func copyPod(p *runtime.Pod) runtime.Pod {
	out := *p
	out.Containers = slices.Clone(p.Containers)
	if p.Annotations != nil {
		out.Annotations = maps.Clone(p.Annotations)
	}
	return out
}
