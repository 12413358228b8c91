package faults

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

var nodeSeq atomic.Int32

// agent is one mirrorlet process with its own node name, identity
// (user mirrorlet:node:<node>, group mirrorlet:nodes, talking through the
// suite's proxy), manifest, root and log directories; it shares the
// suite's containerd.
type agent struct {
	t          testing.TB
	name       string
	dir        string
	manifests  string
	logs       string
	root       string
	kubeconfig string
	healthz    int
	extraFlags []string
	cmd        *nodetest.Process
}

// agentOption changes an agent before its mirrorlet starts.
type agentOption func(*agent)

func withFlags(flags ...string) agentOption {
	return func(a *agent) { a.extraFlags = append(a.extraFlags, flags...) }
}

func withLogs(dir string) agentOption { return func(a *agent) { a.logs = dir } }

// startAgent starts mirrorlet for a new node; when the test ends its pods
// are removed (every manifest first) and it is stopped.
func startAgent(t testing.TB, opts ...agentOption) *agent {
	t.Helper()
	a := &agent{t: t, name: fmt.Sprintf("faults-%d", nodeSeq.Add(1)), dir: t.TempDir()}
	a.manifests = filepath.Join(a.dir, "manifests")
	a.logs = filepath.Join(a.dir, "logs")
	a.root = filepath.Join(a.dir, "root")
	a.healthz = nodetest.FreePort(t)
	if err := os.MkdirAll(a.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(a)
	}
	a.writeKubeconfig()
	a.start()
	t.Cleanup(a.cleanup)
	return a
}

// writeKubeconfig gives the agent its own client certificate, to the API
// server through the suite's proxy.
func (a *agent) writeKubeconfig() {
	cfg, err := cp.restConfig("mirrorlet:node:"+a.name, "mirrorlet:nodes")
	if err != nil {
		a.t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["faults"] = &clientcmdapi.Cluster{Server: "https://" + apiProxy.addr(), CertificateAuthority: cfg.CAFile}
	kc.AuthInfos["agent"] = &clientcmdapi.AuthInfo{ClientCertificate: cfg.CertFile, ClientKey: cfg.KeyFile}
	kc.Contexts["faults"] = &clientcmdapi.Context{Cluster: "faults", AuthInfo: "agent"}
	kc.CurrentContext = "faults"
	a.kubeconfig = filepath.Join(a.dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, a.kubeconfig); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agent) start() {
	a.t.Helper()
	p, err := nodetest.StartProcess("mirrorlet "+a.name, filepath.Join(a.dir, "mirrorlet.log"), binary, a.flags()...)
	if err != nil {
		a.t.Fatal(err)
	}
	a.cmd = p
}

func (a *agent) flags() []string {
	return append([]string{
		"--kubeconfig", a.kubeconfig, "--node-name", a.name,
		"--pod-manifest-path", a.manifests, "--file-check-frequency", "5s",
		"--container-runtime-endpoint", ctd.Endpoint,
		"--root-dir", a.root, "--pod-logs-dir", a.logs,
		"--healthz-bind-address", fmt.Sprintf("127.0.0.1:%d", a.healthz), "--metrics-bind-address", "0",
		"--port", "0",
	}, a.extraFlags...)
}

// stop ends mirrorlet with sig and waits (up to 30 s, then kills it) for
// it to exit.
func (a *agent) stop(sig syscall.Signal) {
	a.t.Helper()
	if err := a.cmd.Stop(sig); err != nil {
		a.t.Error(err)
	}
	a.cmd = nil
}

// cleanup removes every manifest, waits for the pods to stop, then stops
// mirrorlet. On failure it prints the end of mirrorlet's log.
func (a *agent) cleanup() {
	entries, _ := os.ReadDir(a.manifests)
	for _, e := range entries {
		_ = os.Remove(filepath.Join(a.manifests, e.Name()))
	}
	if a.cmd != nil && len(entries) > 0 {
		_ = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true,
			func(context.Context) (bool, error) { return len(a.runtimePods()) == 0, nil })
	}
	a.stop(syscall.SIGTERM)
	if a.t.Failed() {
		if data, err := os.ReadFile(filepath.Join(a.dir, "mirrorlet.log")); err == nil {
			lines := strings.Split(string(data), "\n")
			a.t.Logf("mirrorlet log (last 80 lines):\n%s", strings.Join(lines[max(0, len(lines)-80):], "\n"))
		}
	}
}

// logText is mirrorlet's log so far.
func (a *agent) logText() string {
	data, _ := os.ReadFile(filepath.Join(a.dir, "mirrorlet.log"))
	return string(data)
}

// writeManifest writes pod as file into the manifest directory atomically
// (write then rename), as an editor or a config tool would.
func (a *agent) writeManifest(file string, pod *corev1.Pod) {
	a.t.Helper()
	data, err := yaml.Marshal(pod)
	if err != nil {
		a.t.Fatal(err)
	}
	tmp := filepath.Join(a.dir, file+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		a.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(a.manifests, file)); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agent) removeManifest(file string) {
	a.t.Helper()
	if err := os.Remove(filepath.Join(a.manifests, file)); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agent) mirrorName(pod string) string { return pod + "-" + a.name }

// mirror returns the mirror of pod, or nil when there is none.
func (a *agent) mirror(pod string) *corev1.Pod {
	var p corev1.Pod
	err := admin.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: a.mirrorName(pod)}, &p)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			a.t.Logf("reading mirror %s: %v", a.mirrorName(pod), err)
		}
		return nil
	}
	return &p
}

// mirrors lists every pod bound to this node, by name.
func (a *agent) mirrors() (map[string]corev1.Pod, error) {
	var list corev1.PodList
	if err := admin.List(context.Background(), &list, client.MatchingFields{"spec.nodeName": a.name}); err != nil {
		return nil, err
	}
	out := map[string]corev1.Pod{}
	for _, p := range list.Items {
		out[p.Name] = p
	}
	return out, nil
}

// waitRunning waits until the mirror of pod is Running with every
// container ready and returns it.
func (a *agent) waitRunning(pod string, timeout time.Duration) *corev1.Pod {
	a.t.Helper()
	var m *corev1.Pod
	nodetest.Eventually(a.t, timeout, "mirror "+a.mirrorName(pod)+" Running and ready", func() bool {
		m = a.mirror(pod)
		return m != nil && runningReady(m)
	})
	return m
}

func runningReady(m *corev1.Pod) bool {
	if m.Status.Phase != corev1.PodRunning || len(m.Status.ContainerStatuses) != len(m.Spec.Containers) {
		return false
	}
	for _, cs := range m.Status.ContainerStatuses {
		if !cs.Ready {
			return false
		}
	}
	return true
}

// runtimePods lists this node's sandboxes in containerd, every one (ready
// or not), through CRI.
func (a *agent) runtimePods() []mruntime.Pod {
	pods, err := nodeRuntime.ListPods(context.Background())
	if err != nil {
		a.t.Fatalf("listing runtime pods: %v", err)
	}
	var out []mruntime.Pod
	for _, p := range pods {
		if strings.HasSuffix(p.Name, "-"+a.name) {
			out = append(out, p)
		}
	}
	return out
}

// readyz is the status code of mirrorlet's /readyz (0 when it does not answer).
func (a *agent) readyz() (int, string) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz?verbose", a.healthz))
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	return resp.StatusCode, b.String()
}

func webPod(name string, port int, args ...string) *corev1.Pod {
	return nodetest.WebPod(registry.Ref("webserver"), name, port, args...)
}

// firstAnswer waits for the web server on port to answer (a Running
// mirror without a readiness probe may come before the server listens)
// and returns its answer, which names its pid: an unchanged answer later
// means an unrestarted server.
func firstAnswer(t *testing.T, port int) string {
	t.Helper()
	var body string
	nodetest.Eventually(t, 30*time.Second, fmt.Sprintf("the server on port %d answering", port), func() bool {
		var err error
		body, err = nodetest.Get(port, "/")
		return err == nil
	})
	return body
}
