package nodetest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/mirrorlet/mirrorlet/runtime/cri"
)

// Containerd is a private containerd started by hack/containerd.sh, with
// its own root, state, socket, CNI bridge and config under Dir.
type Containerd struct {
	Dir string
	// Endpoint is its CRI endpoint, unix://...
	Endpoint string
	// Runtime reads it directly, behind the agents' backs, as mirrorlet
	// does (only what mirrorlet made).
	Runtime *cri.Runtime
	// CRI reads everything in it, whoever made it.
	CRI  runtimeapi.RuntimeServiceClient
	conn *grpc.ClientConn
}

// StartContainerd starts a containerd under dir that pulls from registry
// (host:port, plain HTTP) and uses registry's pause image.
func StartContainerd(ctx context.Context, dir, registry string) (*Containerd, error) {
	out, err := exec.Command(RepoPath("hack/containerd.sh"), "start", dir, registry).Output()
	if err != nil {
		return nil, fmt.Errorf("hack/containerd.sh start %s: %w", dir, err)
	}
	c := &Containerd{Dir: dir, Endpoint: "unix://" + strings.TrimSpace(string(out))}
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
