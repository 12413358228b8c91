package bench

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/fake"
)

// fakeCRI is a CRI runtime in the test process, served on a unix socket,
// so that the mirrorlet binary runs 1,000 pods alone in its process: the
// kubelet's own fake (k8s.io/cri-client/pkg/fake: the CRI gRPC services
// over cri-api's FakeRuntimeService and FakeImageService), plus a container
// event stream as containerd ≥ 1.7 has (the fake's own closes at once,
// which would put mirrorlet in its relist-every-second mode of a runtime
// without events, as containerd 1.6).
type fakeCRI struct {
	*fake.RemoteRuntime
	endpoint string

	mu   sync.Mutex
	subs map[chan *runtimeapi.ContainerEventResponse]bool
}

// startFakeCRI serves a fake CRI runtime until the test ends.
func startFakeCRI(t testing.TB) *fakeCRI {
	t.Helper()
	sock := filepath.Join(workDir, "fakecri-"+filepath.Base(t.TempDir())+".sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCRI{RemoteRuntime: fake.NewFakeRemoteRuntime(), endpoint: "unix://" + sock,
		subs: map[chan *runtimeapi.ContainerEventResponse]bool{}}
	f.RuntimeService.FakeStatus = &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true}, {Type: runtimeapi.NetworkReady, Status: true}}}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, f)
	runtimeapi.RegisterImageServiceServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); _ = os.Remove(sock) })
	return f
}

// GetContainerEvents streams the events of the changes made through this
// server until the client goes away.
func (f *fakeCRI) GetContainerEvents(_ *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	ch := make(chan *runtimeapi.ContainerEventResponse, 4096)
	f.mu.Lock()
	f.subs[ch] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev := <-ch:
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

// sandboxOf returns the sandbox of a container (or sandbox) ID with its
// labels, as containerd puts it in an event.
func (f *fakeCRI) sandboxOf(id string) *runtimeapi.PodSandboxStatus {
	rs := f.RuntimeService
	rs.Lock()
	defer rs.Unlock()
	sid := id
	if c, ok := rs.Containers[id]; ok {
		sid = c.SandboxID
	}
	s, ok := rs.Sandboxes[sid]
	if !ok {
		return nil
	}
	return &runtimeapi.PodSandboxStatus{Id: s.Id, Metadata: s.Metadata, Labels: s.Labels, State: s.State}
}

// emit sends an event to every stream (dropped for a stream 4,096 behind:
// mirrorlet's periodic relist covers it).
func (f *fakeCRI) emit(id string, typ runtimeapi.ContainerEventType, sandbox *runtimeapi.PodSandboxStatus) {
	ev := &runtimeapi.ContainerEventResponse{ContainerId: id, ContainerEventType: typ, CreatedAt: time.Now().UnixNano(),
		PodSandboxStatus: sandbox}
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (f *fakeCRI) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	resp, err := f.RemoteRuntime.RunPodSandbox(ctx, req)
	if err == nil {
		f.emit(resp.PodSandboxId, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, f.sandboxOf(resp.PodSandboxId))
	}
	return resp, err
}

func (f *fakeCRI) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	resp, err := f.RemoteRuntime.StopPodSandbox(ctx, req)
	if err == nil {
		f.emit(req.PodSandboxId, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, f.sandboxOf(req.PodSandboxId))
	}
	return resp, err
}

func (f *fakeCRI) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	sandbox := f.sandboxOf(req.PodSandboxId)
	resp, err := f.RemoteRuntime.RemovePodSandbox(ctx, req)
	if err == nil {
		f.emit(req.PodSandboxId, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, sandbox)
	}
	return resp, err
}

func (f *fakeCRI) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	resp, err := f.RemoteRuntime.CreateContainer(ctx, req)
	if err == nil {
		f.emit(resp.ContainerId, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, f.sandboxOf(resp.ContainerId))
	}
	return resp, err
}

func (f *fakeCRI) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	resp, err := f.RemoteRuntime.StartContainer(ctx, req)
	if err == nil {
		f.emit(req.ContainerId, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, f.sandboxOf(req.ContainerId))
	}
	return resp, err
}

func (f *fakeCRI) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	resp, err := f.RemoteRuntime.StopContainer(ctx, req)
	if err == nil {
		f.emit(req.ContainerId, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, f.sandboxOf(req.ContainerId))
	}
	return resp, err
}

func (f *fakeCRI) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	sandbox := f.sandboxOf(req.ContainerId)
	resp, err := f.RemoteRuntime.RemoveContainer(ctx, req)
	if err == nil {
		f.emit(req.ContainerId, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, sandbox)
	}
	return resp, err
}

// drained reports whether the fake runs no sandbox and no container.
func (f *fakeCRI) drained() bool {
	rs := f.RuntimeService
	rs.Lock()
	defer rs.Unlock()
	for _, s := range rs.Sandboxes {
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			return false
		}
	}
	for _, c := range rs.Containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return false
		}
	}
	return true
}
