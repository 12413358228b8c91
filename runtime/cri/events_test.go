package cri

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeCRI is a CRI runtime service with only what Run calls: ListContainers
// and, when events is set, GetContainerEvents streaming what is sent on it.
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	events chan *runtimeapi.ContainerEventResponse // nil: Unimplemented
	mu     sync.Mutex
	list   []*runtimeapi.Container
	polls  int
	opened int
	// broken, when closed, ends every open stream with an error.
	broken chan struct{}
}

func (f *fakeCRI) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	return &runtimeapi.ListContainersResponse{Containers: append([]*runtimeapi.Container(nil), f.list...)}, nil
}

func (f *fakeCRI) GetContainerEvents(_ *runtimeapi.GetEventsRequest, s runtimeapi.RuntimeService_GetContainerEventsServer) error {
	if f.events == nil {
		return status.Error(codes.Unimplemented, "method GetContainerEvents not implemented")
	}
	f.mu.Lock()
	f.opened++
	broken := f.broken
	f.mu.Unlock()
	for {
		select {
		case ev := <-f.events:
			if err := s.Send(ev); err != nil {
				return err
			}
		case <-broken:
			return status.Error(codes.Unavailable, "stream broken by the test")
		case <-s.Context().Done():
			return nil
		}
	}
}

func (f *fakeCRI) counts() (polls, opened int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls, f.opened
}

func (f *fakeCRI) setList(cs ...*runtimeapi.Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = cs
}

// breakStreams ends the open streams; later streams work again.
func (f *fakeCRI) breakStreams() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.broken)
	f.broken = make(chan struct{})
}

// startFake serves f on a unix socket and runs a Runtime's Run against it.
func startFake(t *testing.T, f *fakeCRI) *Runtime {
	t.Helper()
	f.broken = make(chan struct{})
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	r, err := New(t.Context(), Options{
		Endpoint: "unix://" + sock, RootDir: t.TempDir(), PodLogsDir: t.TempDir(),
		PollInterval: 50 * time.Millisecond, EventsConfirm: 200 * time.Millisecond,
		EventsRetryMin: 20 * time.Millisecond, EventsRetryMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = r.Close() })
	return r
}

func managedContainer(id, uid string, state runtimeapi.ContainerState) *runtimeapi.Container {
	return &runtimeapi.Container{Id: id, State: state, Labels: map[string]string{LabelManaged: "true", LabelPodUID: uid}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// quiet waits until no poll has been made for four poll intervals (a poll
// begun before the stream came up may still finish) and returns the count.
func quiet(t *testing.T, f *fakeCRI) int {
	t.Helper()
	last, since := -1, time.Now()
	waitFor(t, "polling to stop", func() bool {
		if p, _ := f.counts(); p != last {
			last, since = p, time.Now()
		}
		return time.Since(since) >= 200*time.Millisecond
	})
	return last
}

// nextChange returns the next UID on Changes, failing after 5s.
func nextChange(t *testing.T, r *Runtime) types.UID {
	t.Helper()
	select {
	case uid := <-r.Changes():
		return uid
	case <-time.After(5 * time.Second):
		t.Fatal("no change reported within 5s")
		return ""
	}
}

// TestEventsReplacePolling: with a runtime that streams events, polling
// stops once the stream is up and every event of a managed container or
// sandbox is reported as its pod's UID, found from the sandbox labels, the
// container labels or an earlier event; events of others are dropped.
func TestEventsReplacePolling(t *testing.T) {
	f := &fakeCRI{events: make(chan *runtimeapi.ContainerEventResponse)}
	r := startFake(t, f)
	waitFor(t, "the event stream to be up", r.StreamsEvents)
	polls := quiet(t, f)
	// A state change that only polling could see stays unreported.
	f.setList(managedContainer("c0", "uid-poll", runtimeapi.ContainerState_CONTAINER_EXITED))

	sandboxLabels := map[string]string{LabelManaged: "true", LabelPodUID: "uid-a"}
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "other", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
		PodSandboxStatus: &runtimeapi.PodSandboxStatus{Labels: map[string]string{"io.kubernetes.pod.uid": "kubelet-pod"}}}
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "c1", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
		PodSandboxStatus: &runtimeapi.PodSandboxStatus{Labels: sandboxLabels}}
	if uid := nextChange(t, r); uid != "uid-a" {
		t.Fatalf("change %q, want uid-a (the unmanaged event dropped)", uid)
	}
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "c2", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
		ContainersStatuses: []*runtimeapi.ContainerStatus{{Id: "c2", Labels: map[string]string{LabelManaged: "true", LabelPodUID: "uid-b"}}}}
	if uid := nextChange(t, r); uid != "uid-b" {
		t.Fatalf("change %q, want uid-b from the container's labels", uid)
	}
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "c1", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT}
	if uid := nextChange(t, r); uid != "uid-a" {
		t.Fatalf("change %q, want uid-a from the earlier event of c1", uid)
	}
	if now, _ := f.counts(); now != polls {
		t.Fatalf("%d polls while the event stream was up", now-polls)
	}
}

// TestNoEventStreamFallsBackToPolling: a runtime without
// GetContainerEvents (containerd 1.6) is polled, and a container that
// exits is reported.
func TestNoEventStreamFallsBackToPolling(t *testing.T) {
	f := &fakeCRI{}
	f.list = []*runtimeapi.Container{managedContainer("c1", "uid-a", runtimeapi.ContainerState_CONTAINER_RUNNING)}
	r := startFake(t, f)
	waitFor(t, "two polls", func() bool { p, _ := f.counts(); return p >= 2 })
	f.setList(managedContainer("c1", "uid-a", runtimeapi.ContainerState_CONTAINER_EXITED))
	if uid := nextChange(t, r); uid != "uid-a" {
		t.Fatalf("change %q, want uid-a", uid)
	}
	if r.StreamsEvents() {
		t.Fatal("StreamsEvents is true for a runtime without the event stream")
	}
}

// TestBrokenEventStreamPollsThenReconnects: when the stream breaks,
// polling resumes at once (and sees a change made meanwhile) until the
// stream is reopened.
func TestBrokenEventStreamPollsThenReconnects(t *testing.T) {
	f := &fakeCRI{events: make(chan *runtimeapi.ContainerEventResponse)}
	f.list = []*runtimeapi.Container{managedContainer("c1", "uid-a", runtimeapi.ContainerState_CONTAINER_RUNNING)}
	r := startFake(t, f)
	waitFor(t, "the event stream to be up", r.StreamsEvents)
	f.setList(managedContainer("c1", "uid-a", runtimeapi.ContainerState_CONTAINER_EXITED))
	f.breakStreams()
	if uid := nextChange(t, r); uid != "uid-a" {
		t.Fatalf("change %q, want uid-a seen by polling after the stream broke", uid)
	}
	waitFor(t, "the event stream reopened", func() bool { _, o := f.counts(); return o >= 2 && r.StreamsEvents() })
}
