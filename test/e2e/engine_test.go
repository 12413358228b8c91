package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// runtimePod returns this node's runtime pod (newest sandbox) named pod.
func (n *node) runtimePod(pod string) (mruntime.Pod, bool) {
	pods, err := nodeRuntime.ListPods(context.Background())
	if err != nil {
		n.t.Logf("listing runtime pods: %v", err)
		return mruntime.Pod{}, false
	}
	var out mruntime.Pod
	found := false
	for _, p := range pods {
		if p.Name == n.mirrorName(pod) && (!found || p.CreatedAt.After(out.CreatedAt)) {
			out, found = p, true
		}
	}
	return out, found
}

// criClient is a raw CRI client of the suite's containerd, to make states
// mirrorlet itself never leaves (a container created, not started).
func criClient(t *testing.T) runtimeapi.RuntimeServiceClient {
	t.Helper()
	path := strings.TrimPrefix(endpoint, "unix://")
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn)
}

// createNotStarted creates the next attempt of a container like the exited
// container id, in its sandbox, and leaves it in Created: what a mirrorlet
// killed between create and start leaves behind.
func createNotStarted(t *testing.T, sandboxID, id string) string {
	t.Helper()
	rt := criClient(t)
	ctx := t.Context()
	st, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	s := st.Status
	attempt := s.Metadata.Attempt + 1
	sb, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sandboxID})
	if err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Dir(filepath.Dir(s.LogPath))
	created, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sandboxID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: s.Metadata.Name, Attempt: attempt},
			Image:    &runtimeapi.ImageSpec{Image: s.ImageRef}, Labels: s.Labels, Annotations: s.Annotations,
			LogPath: filepath.Join(s.Metadata.Name, strconv.Itoa(int(attempt))+".log"),
			Linux:   &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
		},
		SandboxConfig: &runtimeapi.PodSandboxConfig{Metadata: sb.Status.Metadata, LogDirectory: logDir, Labels: sb.Status.Labels},
	})
	if err != nil {
		t.Fatalf("creating a container behind mirrorlet's back: %v", err)
	}
	return created.ContainerId
}

// TestContainerLeftCreatedIsStarted: a mirrorlet killed between creating
// and starting a container finds it in Created after its restart; it
// removes it and starts the next attempt.
func TestContainerLeftCreatedIsStarted(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	n.writeManifest("web.yaml", webPod("web", port))
	n.waitRunning("web", 2*time.Minute)
	n.stop(syscall.SIGKILL)
	if _, err := get(port, "/crash"); err != nil {
		t.Fatal(err)
	}
	var p mruntime.Pod
	eventually(t, 30*time.Second, "the container to exit", func() bool {
		var ok bool
		p, ok = n.runtimePod("web")
		return ok && p.Latest("web") != nil && p.Latest("web").State == mruntime.ContainerExited
	})
	leftover := createNotStarted(t, p.SandboxID, p.Latest("web").ID)
	n.start()
	var cs corev1.ContainerStatus
	eventually(t, time.Minute, "the container running again", func() bool {
		m := n.mirror("web")
		if m == nil || len(m.Status.ContainerStatuses) != 1 {
			return false
		}
		cs = m.Status.ContainerStatuses[0]
		return cs.State.Running != nil && cs.RestartCount > 0
	})
	if containerID(cs.ContainerID) == leftover || cs.RestartCount != 2 {
		t.Errorf("running container %s restartCount %d, want a new one with restartCount 2 (the Created attempt 1 replaced)",
			cs.ContainerID, cs.RestartCount)
	}
	p, _ = n.runtimePod("web")
	for _, c := range p.Containers {
		if c.ID == leftover {
			t.Errorf("the container left in Created was not removed (state %s)", c.State)
		}
	}
	if _, err := get(port, "/"); err != nil {
		t.Errorf("server not answering: %v", err)
	}
}

// consistently fails the test if cond turns false within d.
func consistently(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, d, true,
		func(context.Context) (bool, error) { return !cond(), nil })
	if err == nil {
		t.Fatalf("%s no longer holds", what)
	}
}

// TestFailedStartUnderNeverIsFailed: a container whose command does not
// exist fails to start; under Never the pod ends Failed with StartError,
// its sandbox stopped, and it is not tried again.
func TestFailedStartUnderNeverIsFailed(t *testing.T) {
	n := startNode(t)
	pod := webPod("nocmd", freePort(t))
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.Containers[0].Command = []string{"/does-not-exist"}
	n.writeManifest("nocmd.yaml", pod)
	isFailed := func() bool {
		m := n.mirror("nocmd")
		if m == nil || m.Status.Phase != corev1.PodFailed || len(m.Status.ContainerStatuses) != 1 {
			return false
		}
		cs := m.Status.ContainerStatuses[0]
		return cs.State.Terminated != nil && cs.State.Terminated.Reason == "StartError" && cs.RestartCount == 0
	}
	eventually(t, time.Minute, "mirror Failed with StartError", isFailed)
	eventually(t, 30*time.Second, "the sandbox stopped", func() bool {
		p, ok := n.runtimePod("nocmd")
		return ok && !p.Ready
	})
	consistently(t, 12*time.Second, "Failed, StartError, not retried", func() bool {
		p, _ := n.runtimePod("nocmd")
		return isFailed() && len(p.Containers) == 1
	})
}

// TestInitContainerFailurePerRestartPolicy: a failing init container is
// retried with back-off under Always and OnFailure (the pod stays Pending)
// and fails the pod under Never.
func TestInitContainerFailurePerRestartPolicy(t *testing.T) {
	n := startNode(t)
	for _, policy := range []corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever} {
		name := "init-" + strings.ToLower(string(policy))
		pod := webPod(name, freePort(t))
		pod.Spec.RestartPolicy = policy
		pod.Spec.InitContainers = []corev1.Container{{Name: "init", Image: registry.Ref("webserver"), Args: []string{"--no-such-flag"}}}
		n.writeManifest(name+".yaml", pod)
	}
	initStatus := func(name string) (*corev1.Pod, corev1.ContainerStatus, bool) {
		m := n.mirror(name)
		if m == nil || len(m.Status.InitContainerStatuses) != 1 {
			return nil, corev1.ContainerStatus{}, false
		}
		return m, m.Status.InitContainerStatuses[0], true
	}
	for _, name := range []string{"init-always", "init-onfailure"} {
		eventually(t, time.Minute, name+" init container retried, pod Pending", func() bool {
			m, cs, ok := initStatus(name)
			return ok && cs.RestartCount >= 1 && m.Status.Phase == corev1.PodPending &&
				m.Status.ContainerStatuses[0].State.Running == nil
		})
	}
	eventually(t, time.Minute, "init-never Failed", func() bool {
		m, cs, ok := initStatus("init-never")
		return ok && m.Status.Phase == corev1.PodFailed && cs.State.Terminated != nil &&
			cs.State.Terminated.ExitCode == 2 && cs.RestartCount == 0
	})
	eventually(t, 30*time.Second, "the sandbox of init-never stopped", func() bool {
		p, ok := n.runtimePod("init-never")
		return ok && !p.Ready
	})
}

// pausePID returns the PID of the sandbox's pause process.
func pausePID(t *testing.T, sandboxID string) int {
	t.Helper()
	for _, line := range strings.Split(ctr(t, "task", "ls"), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == sandboxID {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("no task for sandbox %s", sandboxID)
	return 0
}

// TestPauseKilledKeepsDataAndRestartCount: when the sandbox dies (its
// pause process killed), the pod gets a new sandbox; its emptyDir keeps
// what was written, restartCount continues and lastState shows the
// container of the dead sandbox, also after a restart of mirrorlet.
func TestPauseKilledKeepsDataAndRestartCount(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	pod := webPod("keep", port)
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](2)
	n.writeManifest("keep.yaml", pod)
	started := n.waitRunning("keep", 2*time.Minute).Status.ContainerStatuses[0].State.Running.StartedAt
	answer(t, port, "/write?path=/data/x&data=kept")
	before, _ := n.runtimePod("keep")
	if err := syscall.Kill(pausePID(t, before.SandboxID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "a new sandbox with the container restarted", func() bool {
		p, ok := n.runtimePod("keep")
		m := n.mirror("keep")
		if !ok || p.SandboxID == before.SandboxID || !p.Ready || p.Latest("web") == nil || m == nil ||
			len(m.Status.ContainerStatuses) != 1 {
			return false
		}
		cs := m.Status.ContainerStatuses[0]
		return cs.State.Running != nil && containerID(cs.ContainerID) == p.Latest("web").ID
	})
	m := n.mirror("keep")
	if rc := m.Status.ContainerStatuses[0].RestartCount; rc != 1 {
		t.Errorf("restartCount %d after the sandbox was replaced, want 1", rc)
	}
	running := m.Status.ContainerStatuses[0].ContainerID
	lastState := func(what string) {
		eventually(t, 30*time.Second, "lastState of the dead sandbox's container "+what, func() bool {
			cs := containerStatus(n.mirror("keep"), "web")
			return cs != nil && cs.ContainerID == running && cs.RestartCount == 1 && cs.LastTerminationState.Terminated != nil &&
				cs.LastTerminationState.Terminated.StartedAt.Equal(&started)
		})
	}
	lastState("after the new sandbox")
	n.stop(syscall.SIGTERM)
	n.start()
	lastState("after a restart of mirrorlet")
	var got string
	eventually(t, 30*time.Second, "the server answering", func() bool {
		var err error
		got, err = get(port, "/file?path="+url.QueryEscape("/data/x"))
		return err == nil || strings.Contains(got, "no such file")
	})
	if got != "kept" {
		t.Errorf("emptyDir after a new sandbox holds %q, want %q", got, "kept")
	}
	if _, err := os.Stat(filepath.Join(n.root, "pods", string(before.UID))); err != nil {
		t.Errorf("pod data directory: %v", err)
	}
}

// TestSlowPodsDoNotDelayOthers: one pod's slow image pull and another's
// 30 s grace period do not delay a third pod's crash restart.
func TestSlowPodsDoNotDelayOthers(t *testing.T) {
	n := startNode(t)
	slowImage := fmt.Sprintf("slow-%s", n.name)
	if err := registry.Copy(t.Context(), "webserver", slowImage); err != nil {
		t.Fatal(err)
	}
	registry.SetSlow(slowImage, 25*time.Second)
	t.Cleanup(func() { registry.SetSlow(slowImage, 0) })

	gracePort, crashPort := freePort(t), freePort(t)
	grace := webPod("grace", gracePort, "--term-delay", "30s")
	grace.Spec.TerminationGracePeriodSeconds = ptr.To[int64](30)
	n.writeManifest("grace.yaml", grace)
	n.writeManifest("crash.yaml", webPod("crash", crashPort))
	n.waitRunning("grace", 2*time.Minute)
	n.waitRunning("crash", 2*time.Minute)

	// The grace pod is stopping (30 s) and the slow pod pulling.
	if err := os.Remove(filepath.Join(n.manifests, "grace.yaml")); err != nil {
		t.Fatal(err)
	}
	slow := webPod("slow", freePort(t))
	slow.Spec.Containers[0].Image = registry.Ref(slowImage)
	n.writeManifest("slow.yaml", slow)
	eventually(t, 30*time.Second, "the slow pod's sandbox", func() bool { _, ok := n.runtimePod("slow"); return ok })

	start := time.Now()
	if _, err := get(crashPort, "/crash"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the crashed pod restarted and answering", func() bool {
		m := n.mirror("crash")
		if m == nil || m.Status.ContainerStatuses[0].RestartCount < 1 {
			return false
		}
		_, err := get(crashPort, "/")
		return err == nil
	})
	took := time.Since(start)
	t.Logf("crash → restarted and answering in %s, while a pod pulled slowly and another stopped with a 30 s grace period", took)
	if _, err := get(gracePort, "/"); err != nil {
		t.Errorf("the grace pod stopped answering before its grace period: the measurement is void: %v", err)
	}
	if m := n.mirror("slow"); m == nil || m.Status.Phase != corev1.PodPending {
		t.Errorf("the slow pod is no longer pulling: the measurement is void")
	}
	if took > 15*time.Second {
		t.Errorf("crash restart took %s, want within the 10 s back-off plus a 5 s margin", took)
	}
}
