package nodetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/mirrorlet/mirrorlet/runtime/cri"
)

// Containerd is a private containerd started by hack/containerd.sh, with
// its own root, state, socket, CNI bridge, config and log under Dir.
type Containerd struct {
	Dir string
	// Registry is the host:port it pulls from over plain HTTP.
	Registry string
	// Endpoint is its CRI endpoint, unix://.../containerd.sock.
	Endpoint string
	// Runtime reads it directly, behind the agents' backs, as mirrorlet
	// does (only what mirrorlet made).
	Runtime *cri.Runtime
	// CRI reads everything in it, whoever made it.
	CRI  runtimeapi.RuntimeServiceClient
	conn *grpc.ClientConn
}

// StartContainerd starts a containerd under dir that pulls from registry
// (host:port, plain HTTP) and uses registry's pause image
// (MIRRORLET_CONTAINERD=1.6 runs Debian's 1.6).
func StartContainerd(ctx context.Context, dir, registry string) (*Containerd, error) {
	out, err := exec.Command(RepoPath("hack/containerd.sh"), "start", dir, registry).Output()
	if err != nil {
		return nil, fmt.Errorf("hack/containerd.sh start %s: %w", dir, err)
	}
	c := &Containerd{Dir: dir, Registry: registry, Endpoint: "unix://" + strings.TrimSpace(string(out))}
	if c.Runtime, err = cri.New(ctx, cri.Options{Endpoint: c.Endpoint}); err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("connecting to containerd %s: %w", c.Endpoint, err)
	}
	sock := strings.TrimPrefix(c.Endpoint, "unix://")
	c.conn, err = grpc.NewClient("passthrough:///"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}))
	if err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("connecting to containerd %s: %w", c.Endpoint, err)
	}
	c.CRI = runtimeapi.NewRuntimeServiceClient(c.conn)
	return c, nil
}

// Sandboxes returns every ready pod sandbox, whoever made it, by
// "namespace/name" of its pod.
func (c *Containerd) Sandboxes(ctx context.Context) (map[string]string, error) {
	resp, err := c.CRI.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}})
	if err != nil {
		return nil, fmt.Errorf("listing the sandboxes of %s: %w", c.Endpoint, err)
	}
	out := map[string]string{}
	for _, sb := range resp.Items {
		out[sb.Metadata.Namespace+"/"+sb.Metadata.Name] = sb.Id
	}
	return out, nil
}

// RunningContainers returns every running container, whoever made it, by
// "namespace/pod/container" (pod read from the container's sandbox).
func (c *Containerd) RunningContainers(ctx context.Context) (map[string]string, error) {
	sbs, err := c.CRI.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing the sandboxes of %s: %w", c.Endpoint, err)
	}
	pods := map[string]string{}
	for _, sb := range sbs.Items {
		pods[sb.Id] = sb.Metadata.Namespace + "/" + sb.Metadata.Name
	}
	resp, err := c.CRI.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil {
		return nil, fmt.Errorf("listing the containers of %s: %w", c.Endpoint, err)
	}
	out := map[string]string{}
	for _, ctr := range resp.Containers {
		out[pods[ctr.PodSandboxId]+"/"+ctr.Metadata.Name] = ctr.Id
	}
	return out, nil
}

// Stop kills its containers, stops it and removes its directory.
func (c *Containerd) Stop() error {
	if c.conn != nil {
		_ = c.conn.Close()
	}
	if out, err := exec.Command(RepoPath("hack/containerd.sh"), "stop", c.Dir).CombinedOutput(); err != nil {
		return fmt.Errorf("hack/containerd.sh stop %s: %w\n%s", c.Dir, err, out)
	}
	return nil
}

// Pid is the containerd process's pid, as hack/containerd.sh recorded it.
func (c *Containerd) Pid() (string, error) {
	data, err := os.ReadFile(filepath.Join(c.Dir, "containerd.pid"))
	if err != nil {
		return "", fmt.Errorf("reading containerd's pid: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// Kill stops the containerd process (SIGTERM; its containers keep running
// under their shims) and waits until it has exited.
func (c *Containerd) Kill(t testing.TB) {
	t.Helper()
	pid, err := c.Pid()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("kill", pid).CombinedOutput(); err != nil {
		t.Fatalf("kill containerd: %v %s", err, out)
	}
	Eventually(t, 30*time.Second, "containerd to exit", func() bool {
		return exec.Command("kill", "-0", pid).Run() != nil
	})
}

// Start starts containerd again in the same directory (the CRI clients
// reconnect by themselves).
func (c *Containerd) Start(t testing.TB) {
	t.Helper()
	if out, err := exec.Command(RepoPath("hack/containerd.sh"), "start", c.Dir, c.Registry).CombinedOutput(); err != nil {
		t.Fatalf("restarting containerd: %v\n%s", err, out)
	}
}

// Restart is Kill then Start.
func (c *Containerd) Restart(t testing.TB) {
	t.Helper()
	c.Kill(t)
	c.Start(t)
}

// Ctr runs the ctr of this containerd (its version) in the CRI namespace:
// how a test acts on the node behind mirrorlet's back.
func (c *Containerd) Ctr(t testing.TB, args ...string) string {
	t.Helper()
	full := append([]string{"--address", strings.TrimPrefix(c.Endpoint, "unix://"), "-n", "k8s.io"}, args...)
	out, err := exec.Command(filepath.Join(c.Dir, "bin", "ctr"), full...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
