package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ErrNotFound is returned (wrapped) when a sandbox or container does not exist.
var ErrNotFound = errors.New("not found")

// Runtime runs pods on the node. All methods are safe for concurrent use.
// Every value a method returns is owned by the caller (implementations copy).
type Runtime interface {
	// Name is a short name of the runtime, used as the scheme of container
	// IDs in pod status, e.g. "containerd" -> "containerd://<id>".
	Name() string

	// Status returns nil when the runtime is reachable and ready to run pods.
	Status(ctx context.Context) error

	// ListPods returns every pod sandbox mirrorlet created on this runtime
	// (recognised by its labels, so pods survive a mirrorlet restart), with
	// all its containers, including exited ones not yet removed. Sandboxes of
	// other clients are never returned.
	ListPods(ctx context.Context) ([]Pod, error)

	// RunSandbox creates and starts the sandbox of pod and returns its ID.
	// pod.UID identifies the pod. The caller calls it only when no ready
	// sandbox exists for the pod; calling it again creates another sandbox.
	RunSandbox(ctx context.Context, pod *corev1.Pod) (string, error)

	// StartContainer pulls the image as container.ImagePullPolicy says,
	// creates container (one of pod's init or app containers) in sandboxID
	// for the given attempt (0 for the first, +1 per restart) and starts it.
	// It returns the new container's ID. An image that cannot be had is
	// reported as an error wrapping ErrImagePull. A container that was
	// created but failed to start is left in the runtime as an exited
	// attempt (reason StartError, as containerd reports it): its ID is
	// returned with an error wrapping ErrStartFailed.
	StartContainer(ctx context.Context, pod *corev1.Pod, sandboxID string, container *corev1.Container, attempt uint32) (string, error)

	// StopContainer stops a running container: SIGTERM (or the image's stop
	// signal), then SIGKILL once grace has passed. Stopping an exited or
	// missing container is not an error.
	StopContainer(ctx context.Context, containerID string, grace time.Duration) error

	// RemoveContainer removes an exited container and its record. Removing a
	// missing container is not an error.
	RemoveContainer(ctx context.Context, containerID string) error

	// StopPod stops every container of the sandbox (each with grace), then
	// stops and removes the sandbox and its containers. Idempotent: a missing
	// sandbox is not an error. The pod's data (volumes, logs, termination
	// messages) is kept: only RemovePodData removes it. An error wrapping
	// ErrSandboxNotRemoved says the sandbox was stopped but not removed.
	StopPod(ctx context.Context, sandboxID string, grace time.Duration) error

	// StopSandbox stops every container of the sandbox (each with grace) and
	// the sandbox (its IP and host ports are freed), but keeps their records:
	// the sandbox is listed NotReady with its exited containers until StopPod
	// removes it. Idempotent.
	StopSandbox(ctx context.Context, sandboxID string, grace time.Duration) error

	// RemovePodData removes what the runtime keeps on the node for the pod
	// with uid across sandboxes: emptyDir volumes, subPath bind mounts,
	// termination messages and container logs. The caller calls it only once the pod itself is gone
	// (no longer desired) and its sandboxes are removed. A pod without data
	// is not an error.
	RemovePodData(ctx context.Context, uid types.UID) error

	// Changes returns a channel that receives the UID of a pod whenever one
	// of its containers or its sandbox changes state on its own (a container
	// exits or is killed from outside), or "" when any pod may have changed
	// unseen (an event stream broke). Sends never block: a slow reader may
	// miss a UID and must also resync periodically. May return nil when the
	// runtime cannot tell; callers then rely on periodic resyncs.
	Changes() <-chan types.UID
}

// UIDLister is implemented by runtimes that can list the sandboxes of one
// pod UID for less than a full ListPods; the runtime cache uses it to
// refresh just the pod that changed.
type UIDLister interface {
	// ListPodsOf returns what ListPods would return for the pods with uid.
	ListPodsOf(ctx context.Context, uid types.UID) ([]Pod, error)
}

// PodDataLister is implemented by runtimes that can say which pods they
// keep data of, so that the data of a pod version that went while
// mirrorlet was stopped (no sandbox left to find it by) is removed too.
type PodDataLister interface {
	// PodDataUIDs returns the UIDs of the pods whose data (as
	// RemovePodData removes it) the runtime keeps.
	PodDataUIDs(ctx context.Context) ([]types.UID, error)
}

// EventStreamer is implemented by runtimes whose Changes channel is fed by
// the runtime's own events (CRI GetContainerEvents) rather than by polling.
// The runtime cache then relists less often.
type EventStreamer interface {
	// StreamsEvents reports whether Changes is currently event-driven.
	StreamsEvents() bool
}

// AnnotationAttempts, on a sandbox, records the highest attempt number of
// each container of the pod UID when the sandbox was made ("c=3,d=0"), so
// that restart counts continue across sandboxes after a restart of
// mirrorlet. Runtimes copy pod annotations to the sandbox and list them.
const AnnotationAttempts = "mirrorlet.io/container-attempts"

// ErrStartFailed marks errors of StartContainer for a container that was
// created but did not start; the attempt stays listed as exited.
var ErrStartFailed = errors.New("container failed to start")

// ErrSandboxNotRemoved marks errors of StopPod for a sandbox that was
// stopped (its containers and network too) but could not be removed.
var ErrSandboxNotRemoved = errors.New("sandbox stopped but not removed")

// ErrImagePull marks errors of StartContainer caused by the image.
var ErrImagePull = errors.New("image not available")

// ErrImageNeverPull marks an image that is missing while the pull policy
// is Never; it wraps ErrImagePull.
var ErrImageNeverPull = fmt.Errorf("%w (ErrImageNeverPull)", ErrImagePull)

// Pod is what the runtime runs for one static pod: one sandbox and its containers.
type Pod struct {
	// UID is the static pod's UID (its spec hash), read back from labels.
	UID       types.UID
	Namespace string
	Name      string
	SandboxID string
	// Ready is true while the sandbox is running.
	Ready     bool
	IP        string
	CreatedAt time.Time
	// Grace is the pod's termination grace period as recorded when its
	// sandbox was made, if the runtime keeps it (nil if not).
	Grace *time.Duration
	// Annotations are the pod annotations recorded on the sandbox.
	Annotations map[string]string
	// Containers holds every container of the sandbox, all attempts, in no
	// particular order.
	Containers []Container
}

// ContainerState is the lifecycle state of one container attempt.
type ContainerState string

// Container states, as in the CRI.
const (
	ContainerCreated ContainerState = "Created"
	ContainerRunning ContainerState = "Running"
	ContainerExited  ContainerState = "Exited"
	ContainerUnknown ContainerState = "Unknown"
)

// Container is one attempt of one container of a pod.
type Container struct {
	ID      string
	Name    string
	Attempt uint32
	// Init is true for an init container.
	Init       bool
	State      ContainerState
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int32
	Reason     string
	Message    string
	Image      string
	ImageRef   string
}

// Latest returns the attempt of the named container with the highest attempt
// number (ties broken by creation time), or nil if there is none.
func (p *Pod) Latest(name string) *Container {
	var latest *Container
	for i := range p.Containers {
		c := &p.Containers[i]
		if c.Name != name {
			continue
		}
		if latest == nil || c.Attempt > latest.Attempt ||
			(c.Attempt == latest.Attempt && c.CreatedAt.After(latest.CreatedAt)) {
			latest = c
		}
	}
	return latest
}
