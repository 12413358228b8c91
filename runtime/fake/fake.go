package fake

import (
	"context"
	"errors"
	"fmt"
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
	execFn        ExecFunc
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
	out := make([]runtime.Pod, 0, len(r.pods))
	for _, p := range r.pods {
		out = append(out, copyPod(p))
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
	r.pods[id] = &runtime.Pod{
		UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name, SandboxID: id,
		Ready: true, IP: "10.0.0.1", CreatedAt: r.clock.Now(),
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
		return "", fmt.Errorf("pulling image %q: %w", c.Image, runtime.ErrImagePull)
	}
	isInit := slices.ContainsFunc(pod.Spec.InitContainers, func(ic corev1.Container) bool { return ic.Name == c.Name })
	now := r.clock.Now()
	id := r.newID("container")
	p.Containers = append(p.Containers, runtime.Container{
		ID: id, Name: c.Name, Attempt: attempt, Init: isInit, State: runtime.ContainerRunning,
		CreatedAt: now, StartedAt: now, Image: c.Image, ImageRef: "sha256:" + c.Image,
	})
	r.starts[pod.UID]++
	return id, nil
}

// StopContainer implements runtime.Runtime.
func (r *Runtime) StopContainer(_ context.Context, containerID string, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.container(containerID); c != nil && c.State == runtime.ContainerRunning {
		r.exit(c, 0, "Completed")
	}
	return nil
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
func (r *Runtime) StopPod(_ context.Context, sandboxID string, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unreachable {
		return errors.New("fake runtime is unreachable")
	}
	delete(r.pods, sandboxID)
	return nil
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
			return fmt.Errorf("container %s of pod %s is not running", name, uid)
		}
		reason := "Completed"
		if code != 0 {
			reason = "Error"
		}
		r.exit(c, code, reason)
		select {
		case r.changes <- uid:
		default:
		}
		return nil
	}
	return fmt.Errorf("pod %s: %w", uid, runtime.ErrNotFound)
}

// SetImageMissing makes StartContainer fail with ErrImagePull for image.
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
	return out
}
