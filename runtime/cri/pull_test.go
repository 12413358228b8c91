package cri

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// slowImages is a CRI image service whose pulls take pull.
type slowImages struct {
	runtimeapi.UnimplementedImageServiceServer
	pull   time.Duration
	mu     sync.Mutex
	pulled bool
}

func (s *slowImages) ImageStatus(ctx context.Context, _ *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pulled {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: &runtimeapi.Image{Id: "sha256:1"}}, nil
}

func (s *slowImages) PullImage(ctx context.Context, _ *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(s.pull):
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulled = true
	return &runtimeapi.PullImageResponse{ImageRef: "sha256:1"}, nil
}

// A pull longer than the call timeout succeeds: the image status check
// after it has a deadline of its own (it is not ErrImagePull).
func TestPullLongerThanCallTimeout(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterImageServiceServer(srv, &slowImages{pull: 600 * time.Millisecond})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	r, err := New(t.Context(), Options{Endpoint: "unix://" + sock, CallTimeout: 200 * time.Millisecond,
		PullTimeout: 10 * time.Second, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	c := &corev1.Container{Name: "c", Image: "example.com/slow:1", ImagePullPolicy: corev1.PullIfNotPresent}
	img, err := r.ensureImage(t.Context(), c, r.sandboxConfig(testPod(), 0))
	if err != nil {
		t.Fatalf("a pull of 600ms with a 200ms call timeout: %v", err)
	}
	if img.ref != "sha256:1" {
		t.Errorf("image ref %q", img.ref)
	}
}
