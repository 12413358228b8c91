package nodetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// MirrorletConfig says how to run a mirrorlet process.
type MirrorletConfig struct {
	Binary     string
	Kubeconfig string
	NodeName   string
	// Containerd is the runtime; nil runs the in-memory fake:// runtime.
	Containerd *Containerd
	// Flags are added after the ones Mirrorlet sets; later flags win.
	Flags []string
}

// Mirrorlet is one mirrorlet process run by a test, with its own manifest,
// root and log directories under Dir. It is stopped when the test ends,
// after its manifests are removed and its pods are gone from the runtime.
type Mirrorlet struct {
	t   testing.TB
	cfg MirrorletConfig
	// Dir holds manifests/, root/, logs/ and mirrorlet.log.
	Dir       string
	Manifests string
	Logs      string
	proc      *Process
}

// StartMirrorlet starts mirrorlet until the test ends.
func StartMirrorlet(t testing.TB, cfg MirrorletConfig) *Mirrorlet {
	t.Helper()
	m := &Mirrorlet{t: t, cfg: cfg, Dir: t.TempDir()}
	m.Manifests = filepath.Join(m.Dir, "manifests")
	m.Logs = filepath.Join(m.Dir, "logs")
	if err := os.MkdirAll(m.Manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(m.cleanup)
	return m
}

// Name is the node name.
func (m *Mirrorlet) Name() string { return m.cfg.NodeName }

// Start starts the process again after Stop.
func (m *Mirrorlet) Start() {
	m.t.Helper()
	args := []string{
		"--kubeconfig", m.cfg.Kubeconfig, "--node-name", m.cfg.NodeName,
		"--pod-manifest-path", m.Manifests, "--file-check-frequency", "5s",
		"--container-runtime-endpoint", m.endpoint(),
		"--root-dir", filepath.Join(m.Dir, "root"), "--pod-logs-dir", m.Logs,
		"--healthz-bind-address", "0", "--metrics-bind-address", "0", "--port", "0",
	}
	p, err := StartProcess("mirrorlet "+m.cfg.NodeName, filepath.Join(m.Dir, "mirrorlet.log"),
		m.cfg.Binary, append(args, m.cfg.Flags...)...)
	if err != nil {
		m.t.Fatal(err)
	}
	m.proc = p
}

// Stop ends the process with sig; its containers keep running.
func (m *Mirrorlet) Stop(sig syscall.Signal) {
	m.t.Helper()
	if err := m.proc.Stop(sig); err != nil {
		m.t.Error(err)
	}
	m.proc = nil
}

// Pid is the process's pid while it runs.
func (m *Mirrorlet) Pid() int { return m.proc.Pid() }

// WriteManifest writes pod as file into the manifest directory atomically.
func (m *Mirrorlet) WriteManifest(file string, pod *corev1.Pod) {
	m.t.Helper()
	data, err := yaml.Marshal(pod)
	if err != nil {
		m.t.Fatal(err)
	}
	tmp := filepath.Join(m.Dir, file+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.Manifests, file)); err != nil {
		m.t.Fatal(err)
	}
}

// RemoveManifest removes file from the manifest directory.
func (m *Mirrorlet) RemoveManifest(file string) {
	m.t.Helper()
	if err := os.Remove(filepath.Join(m.Manifests, file)); err != nil {
		m.t.Fatal(err)
	}
}

// cleanup removes every manifest, waits (up to a minute) until its pods
// are gone from the runtime, stops mirrorlet and prints its log on failure.
func (m *Mirrorlet) cleanup() {
	entries, _ := os.ReadDir(m.Manifests)
	for _, e := range entries {
		_ = os.Remove(filepath.Join(m.Manifests, e.Name()))
	}
	if m.proc != nil && len(entries) > 0 && m.cfg.Containerd != nil {
		_ = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true,
			func(context.Context) (bool, error) { return len(m.RuntimePods()) == 0, nil })
	}
	if m.proc != nil {
		m.Stop(syscall.SIGTERM)
	}
	if m.t.Failed() {
		p := &Process{LogPath: filepath.Join(m.Dir, "mirrorlet.log")}
		m.t.Logf("mirrorlet %s log (last 80 lines):\n%s", m.cfg.NodeName, p.Tail(80))
	}
}

func (m *Mirrorlet) endpoint() string {
	if m.cfg.Containerd == nil {
		return "fake://"
	}
	return m.cfg.Containerd.Endpoint
}

// RuntimePods returns the runtime's pods of this node (by the mirror-name
// suffix: several nodes may share a containerd), by name.
func (m *Mirrorlet) RuntimePods() map[string]mruntime.Pod {
	m.t.Helper()
	pods, err := m.cfg.Containerd.Runtime.ListPods(context.Background())
	if err != nil {
		m.t.Errorf("listing runtime pods: %v", err)
		return nil
	}
	out := map[string]mruntime.Pod{}
	for _, p := range pods {
		if strings.HasSuffix(p.Name, "-"+m.cfg.NodeName) {
			out[p.Name] = p
		}
	}
	return out
}
