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

// fakeCRI is a CRI runtime service with GetContainerEvents, streaming what
// is sent on events (when set), and the listing calls, counted.
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	events chan *runtimeapi.ContainerEventResponse // nil: Unimplemented
	mu     sync.Mutex
	list   []*runtimeapi.Container
	lists  int
	// tries counts calls of GetContainerEvents, opened the streams opened.
	tries, opened int
	// broken, when closed, ends every open stream with an error.
	broken chan struct{}
}

func (f *fakeCRI) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	return &runtimeapi.ListContainersResponse{Containers: append([]*runtimeapi.Container(nil), f.list...)}, nil
}

func (f *fakeCRI) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{}, nil
}

func (f *fakeCRI) GetContainerEvents(_ *runtimeapi.GetEventsRequest, s runtimeapi.RuntimeService_GetContainerEventsServer) error {
	f.mu.Lock()
	f.tries++
	f.mu.Unlock()
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

// counts returns the ListContainers calls, GetContainerEvents calls and
// streams opened so far.
func (f *fakeCRI) counts() (lists, tries, opened int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists, f.tries, f.opened
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
		EventsConfirm:  200 * time.Millisecond,
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

// noLists fails the test if Run listed the runtime: the runtime cache is
// the only lister.
func noLists(t *testing.T, f *fakeCRI) {
	t.Helper()
	if lists, _, _ := f.counts(); lists != 0 {
		t.Fatalf("Run listed the runtime's containers %d times; only the runtime cache lists", lists)
	}
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

// TestEventsReportPods: every event of a managed container or sandbox is
// reported as its pod's UID, found from the sandbox labels, the container
// labels, an earlier event or a listing; events of others are dropped.
// Run itself never lists the runtime.
func TestEventsReportPods(t *testing.T) {
	f := &fakeCRI{events: make(chan *runtimeapi.ContainerEventResponse)}
	r := startFake(t, f)
	waitFor(t, "the event stream to be up", r.StreamsEvents)

	sandboxLabels := map[string]string{LabelManaged: "true", LabelPodUID: "uid-a"}
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "other", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
		PodSandboxStatus: &runtimeapi.PodSandboxStatus{Labels: map[string]string{"io.kubernetes.pod.uid": "kubelet-pod"}}}
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "c1", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
		PodSandboxStatus: &runtimeapi.PodSandboxStatus{Labels: sandboxLabels}}
	if uid := nextChange(t, r); uid != "uid-a" {
		t.Fatalf("change %q, want uid-a (the unmanaged event dropped)", uid)
	}
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "c2", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
		ContainersStatuses: []*runtimeapi.ContainerStatus{{Id: "c2", Labels: map[string]string{LabelManaged: "true", LabelPodUID: "uid-b"}}}}
	if uid := nextChange(t, r); uid != "uid-b" {
		t.Fatalf("change %q, want uid-b from the container's labels", uid)
	}
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "c1", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT}
	if uid := nextChange(t, r); uid != "uid-a" {
		t.Fatalf("change %q, want uid-a from the earlier event of c1", uid)
	}
	noLists(t, f)
	// A container known from a listing (made before mirrorlet started).
	f.setList(managedContainer("c3", "uid-c", runtimeapi.ContainerState_CONTAINER_EXITED))
	if _, err := r.ListPods(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "c3", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT}
	if uid := nextChange(t, r); uid != "uid-c" {
		t.Fatalf("change %q, want uid-c from the listing of c3", uid)
	}
}

// TestEventsOfOwnActionsReportNothing: the created and started events of
// mirrorlet's own containers and sandboxes are not changes (the pod worker
// that made them refreshes its pod itself): a 50-pod start must not make
// the runtime cache list the runtime for each of its 200 such events. What
// they teach (which pod a container ID is) still serves a later event that
// comes without labels.
func TestEventsOfOwnActionsReportNothing(t *testing.T) {
	f := &fakeCRI{events: make(chan *runtimeapi.ContainerEventResponse)}
	r := startFake(t, f)
	waitFor(t, "the event stream to be up", r.StreamsEvents)
	labels := map[string]string{LabelManaged: "true", LabelPodUID: "uid-a"}
	for _, typ := range []runtimeapi.ContainerEventType{runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
		runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT} {
		f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "sb-a", ContainerEventType: typ,
			PodSandboxStatus: &runtimeapi.PodSandboxStatus{Labels: labels}}
		f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "c-a", ContainerEventType: typ,
			ContainersStatuses: []*runtimeapi.ContainerStatus{{Id: "c-a", Labels: labels}}}
	}
	// Events arrive in order: the next change is the stop, or one of the
	// four events above was reported.
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "c-b", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
		ContainersStatuses: []*runtimeapi.ContainerStatus{{Id: "c-b", Labels: map[string]string{LabelManaged: "true", LabelPodUID: "uid-b"}}}}
	if uid := nextChange(t, r); uid != "uid-b" {
		t.Fatalf("change %q, want uid-b (created and started events report nothing)", uid)
	}
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "c-a", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT}
	if uid := nextChange(t, r); uid != "uid-a" {
		t.Fatalf("change %q, want uid-a (learnt from c-a's started event)", uid)
	}
	noLists(t, f)
}

// TestNoEventStreamNoPolling: against a runtime without GetContainerEvents
// (containerd 1.6) Run keeps trying the stream with back-off, says it does
// not stream (the runtime cache then relists every second) and never lists
// the runtime itself.
func TestNoEventStreamNoPolling(t *testing.T) {
	f := &fakeCRI{}
	f.list = []*runtimeapi.Container{managedContainer("c1", "uid-a", runtimeapi.ContainerState_CONTAINER_RUNNING)}
	r := startFake(t, f)
	waitFor(t, "three tries of the event stream", func() bool { _, tries, _ := f.counts(); return tries >= 3 })
	if r.StreamsEvents() {
		t.Fatal("StreamsEvents is true for a runtime without the event stream")
	}
	noLists(t, f)
}

// TestBrokenEventStreamAsksForRelist: when the stream breaks, Run says at
// once that it no longer streams and asks for a relist of everything
// (Changes receives ""), then reopens the stream.
func TestBrokenEventStreamAsksForRelist(t *testing.T) {
	f := &fakeCRI{events: make(chan *runtimeapi.ContainerEventResponse)}
	r := startFake(t, f)
	waitFor(t, "the event stream to be up", r.StreamsEvents)
	f.breakStreams()
	if uid := nextChange(t, r); uid != "" {
		t.Fatalf("change %q after the stream broke, want \"\" (relist everything)", uid)
	}
	waitFor(t, "the event stream reopened", func() bool { _, _, o := f.counts(); return o >= 2 && r.StreamsEvents() })
	noLists(t, f)
}
