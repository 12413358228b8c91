package cri

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/podlogs"
)

// minGrace is the shortest time a container gets between its stop signal
// and SIGKILL, as in the kubelet.
const minGrace = 2 * time.Second

// StartContainer implements mruntime.Runtime.
func (r *Runtime) StartContainer(ctx context.Context, pod *corev1.Pod, sandboxID string, c *corev1.Container, attempt uint32) (string, error) {
	sbCfg := r.sandboxConfig(pod, 0)
	image, err := r.ensureImage(ctx, c, sbCfg)
	if err != nil {
		return "", err
	}
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	cfg, err := r.containerConfig(ctx, pod, sandboxID, c, attempt, image)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(sbCfg.LogDirectory, c.Name), 0o755); err != nil {
		return "", fmt.Errorf("creating log directory of container %s: %w", c.Name, err)
	}
	created, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sbCfg})
	if err != nil {
		return "", fmt.Errorf("creating container %s: %w", c.Name, wrapNotFound(err))
	}
	if _, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		// The runtime keeps the attempt: exited with reason StartError when
		// the start failed, or Created/Unknown when the call timed out. The
		// caller's state machine handles both from the listing.
		return created.ContainerId, fmt.Errorf("%w: starting container %s: %w", mruntime.ErrStartFailed, c.Name, err)
	}
	return created.ContainerId, nil
}

// pulledImage is an image present in the runtime.
type pulledImage struct {
	// ref is the image ID the container is created from.
	ref    string
	status *runtimeapi.Image
}

// ensureImage makes c's image present as c.ImagePullPolicy says.
func (r *Runtime) ensureImage(ctx context.Context, c *corev1.Container, sb *runtimeapi.PodSandboxConfig) (*pulledImage, error) {
	spec := &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image}
	if c.ImagePullPolicy != corev1.PullAlways {
		sctx, cancel := r.callCtx(ctx)
		st, err := r.img.ImageStatus(sctx, &runtimeapi.ImageStatusRequest{Image: spec})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("checking image %q: %w", c.Image, err)
		}
		if st.GetImage() != nil {
			return &pulledImage{ref: st.Image.Id, status: st.Image}, nil
		}
		if c.ImagePullPolicy == corev1.PullNever {
			return nil, fmt.Errorf("%w: container image %q is not present with pull policy of Never", mruntime.ErrImageNeverPull, c.Image)
		}
	}
	pctx, pcancel := context.WithTimeout(ctx, r.opts.PullTimeout)
	defer pcancel()
	pulled, err := r.img.PullImage(pctx, &runtimeapi.PullImageRequest{Image: spec, SandboxConfig: sb})
	if err != nil {
		return nil, fmt.Errorf("%w: pulling image %q: %w", mruntime.ErrImagePull, c.Image, err)
	}
	// The status check gets its own deadline: a long pull must not leave
	// it an expired one.
	sctx, cancel := r.callCtx(ctx)
	defer cancel()
	st, err := r.img.ImageStatus(sctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: pulled.ImageRef}})
	if err != nil {
		return nil, fmt.Errorf("%w: image %q pulled as %s: %w", mruntime.ErrImagePull, c.Image, pulled.ImageRef, err)
	}
	if st.GetImage() == nil {
		return nil, fmt.Errorf("%w: image %q pulled as %s but not found", mruntime.ErrImagePull, c.Image, pulled.ImageRef)
	}
	return &pulledImage{ref: pulled.ImageRef, status: st.Image}, nil
}

func (r *Runtime) containerConfig(ctx context.Context, pod *corev1.Pod, sandboxID string, c *corev1.Container, attempt uint32, image *pulledImage) (*runtimeapi.ContainerConfig, error) {
	podIP := r.opts.NodeIP
	if !pod.Spec.HostNetwork {
		podIP = r.sandboxIP(ctx, sandboxID)
	}
	envs, vars, err := r.containerEnv(pod, c, podIP)
	if err != nil {
		return nil, err
	}
	mounts, err := r.containerMounts(pod, c, attempt, podIP)
	if err != nil {
		return nil, err
	}
	sec, err := containerSecurity(&pod.Spec, c, image.status, r.opts.RootDir)
	if err != nil {
		return nil, err
	}
	init := "false"
	for _, ic := range pod.Spec.InitContainers {
		if ic.Name == c.Name {
			init = "true"
		}
	}
	labels := podLabels(string(pod.UID), pod.Namespace, pod.Name)
	labels[LabelContainer] = c.Name
	labels[LabelInit] = init
	return &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:       &runtimeapi.ImageSpec{Image: image.ref, UserSpecifiedImage: c.Image},
		Command:     expandAll(c.Command, vars),
		Args:        expandAll(c.Args, vars),
		WorkingDir:  c.WorkingDir,
		Envs:        envs,
		Mounts:      mounts,
		Labels:      labels,
		Annotations: map[string]string{AnnotationImage: c.Image},
		LogPath:     podlogs.AttemptPath(c.Name, attempt),
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       resources(pod, c),
			SecurityContext: sec,
		},
	}, nil
}

// StopContainer implements mruntime.Runtime.
func (r *Runtime) StopContainer(ctx context.Context, containerID string, grace time.Duration) error {
	grace = max(grace, minGrace)
	ctx, cancel := context.WithTimeout(ctx, grace+r.opts.CallTimeout)
	defer cancel()
	secs := int64(math.Ceil(grace.Seconds()))
	if _, err := r.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: containerID, Timeout: secs}); err != nil && !isNotFound(err) {
		return fmt.Errorf("stopping container %s: %w", containerID, err)
	}
	return nil
}

// RemoveContainer implements mruntime.Runtime; it also removes the
// container's log file.
func (r *Runtime) RemoveContainer(ctx context.Context, containerID string) error {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	st, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: containerID})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading status of container %s: %w", containerID, err)
	}
	if _, err := r.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: containerID}); err != nil && !isNotFound(err) {
		return fmt.Errorf("removing container %s: %w", containerID, err)
	}
	if p := st.GetStatus().GetLogPath(); p != "" {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("removing log of container %s: %w", containerID, err)
		}
	}
	if md, lb := st.GetStatus().GetMetadata(), st.GetStatus().GetLabels(); md != nil && lb[LabelPodUID] != "" {
		_ = os.Remove(r.terminationLogPath(lb[LabelPodUID], md.Name, md.Attempt))
	}
	return nil
}
