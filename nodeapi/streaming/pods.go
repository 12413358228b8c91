package streaming

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// Runtime is what the handlers need of the container runtime;
// *cri.Runtime implements it.
type Runtime interface {
	// ListPods returns every pod sandbox of mirrorlet with its containers
	// (as mruntime.Runtime's ListPods). It may be called for every request.
	ListPods(ctx context.Context) ([]mruntime.Pod, error)
	// Exec returns a single-use URL of the runtime's streaming server that
	// runs cmd in the running container containerID.
	Exec(ctx context.Context, containerID string, cmd []string, opts mruntime.StreamOptions) (*url.URL, error)
	// Attach returns a single-use URL that attaches to the main process of
	// the running container containerID.
	Attach(ctx context.Context, containerID string, opts mruntime.StreamOptions) (*url.URL, error)
	// PortForward returns a single-use URL that forwards connections into
	// the network namespace of sandbox sandboxID. ports may be empty.
	PortForward(ctx context.Context, sandboxID string, ports []int32) (*url.URL, error)
}

// httpError is an error with the HTTP status it is answered with.
type httpError struct {
	status int
	err    error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func notFound(format string, args ...any) error {
	return &httpError{status: http.StatusNotFound, err: fmt.Errorf(format, args...)}
}

func badRequest(err error) error {
	return &httpError{status: http.StatusBadRequest, err: err}
}

// findPod returns the runtime pod named name in namespace ns. When the
// runtime has several sandboxes of that name (a pod being replaced), the
// newest ready one wins. A pod of another node does not exist.
func (h *Handlers) findPod(ctx context.Context, ns, name string) (*mruntime.Pod, error) {
	if h.cfg.NodeName != "" && !strings.HasSuffix(name, "-"+h.cfg.NodeName) {
		return nil, notFound("pod does not exist")
	}
	pods, err := h.cfg.Runtime.ListPods(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the runtime's pods: %w", err)
	}
	var found *mruntime.Pod
	for i := range pods {
		p := &pods[i]
		if p.Namespace != ns || p.Name != name {
			continue
		}
		if found == nil || better(p, found) {
			found = p
		}
	}
	if found == nil {
		return nil, notFound("pod does not exist")
	}
	return found, nil
}

// better reports whether sandbox a is a better match than b: ready beats
// not ready, then newer beats older.
func better(a, b *mruntime.Pod) bool {
	if a.Ready != b.Ready {
		return a.Ready
	}
	return a.CreatedAt.After(b.CreatedAt)
}

// runningContainer returns the ID of the running attempt of container name
// in the pod. A container that exists but does not run now is not found,
// as for the kubelet, which looks among running containers only.
func runningContainer(pod *mruntime.Pod, name string) (string, error) {
	c := pod.Latest(name)
	if c == nil || c.State != mruntime.ContainerRunning {
		return "", notFound("container not found (%q)", name)
	}
	return c.ID, nil
}

// writeError answers err: its own status for an httpError, 404 for a
// runtime's not-found, else 500; the body is the error's text, as the
// kubelet's streaming routes answer.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	switch {
	case errors.As(err, &he):
		code = he.status
	case errors.Is(err, mruntime.ErrNotFound):
		code = http.StatusNotFound
	}
	http.Error(w, err.Error(), code)
}
