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
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

var nodeSeq atomic.Int32

// agent is one mirrorlet process (nodetest.Mirrorlet) with its own node
// name, identity (user mirrorlet:node:<node>, group mirrorlet:nodes,
// talking through the suite's proxy), manifest, root and log directories
// and /readyz port; it shares the suite's containerd.
type agent struct {
	*nodetest.Mirrorlet
	t       testing.TB
	name    string
	logs    string
	healthz int
	flags   []string
}

// agentOption changes an agent before its mirrorlet starts.
type agentOption func(*agent)

func withFlags(flags ...string) agentOption {
	return func(a *agent) { a.flags = append(a.flags, flags...) }
}

// withLogs puts the pods' logs in dir instead of the agent's own directory.
func withLogs(dir string) agentOption {
	return func(a *agent) { a.logs = dir }
}

// startAgent starts mirrorlet for a new node; when the test ends its pods
// are removed (every manifest first) and it is stopped.
func startAgent(t testing.TB, opts ...agentOption) *agent {
	t.Helper()
	a := &agent{t: t, name: fmt.Sprintf("faults-%d", nodeSeq.Add(1)), healthz: nodetest.FreePort(t)}
	for _, o := range opts {
		o(a)
	}
	flags := append([]string{"--healthz-bind-address", fmt.Sprintf("127.0.0.1:%d", a.healthz)}, a.flags...)
	if a.logs != "" {
		flags = append(flags, "--pod-logs-dir", a.logs)
	}
	a.Mirrorlet = nodetest.StartMirrorlet(t, nodetest.MirrorletConfig{
		Binary: binary, Kubeconfig: a.writeKubeconfig(t.TempDir()), NodeName: a.name, Containerd: ctd, Flags: flags,
	})
	if a.logs == "" {
		a.logs = a.Logs
	}
	return a
}

// writeKubeconfig writes, into dir, a kubeconfig with the agent's own
// client certificate, to the API server through the suite's proxy.
func (a *agent) writeKubeconfig(dir string) string {
	cfg, err := cp.restConfig("mirrorlet:node:"+a.name, "mirrorlet:nodes")
	if err != nil {
		a.t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["faults"] = &clientcmdapi.Cluster{Server: "https://" + apiProxy.addr(), CertificateAuthority: cfg.CAFile}
	kc.AuthInfos["agent"] = &clientcmdapi.AuthInfo{ClientCertificate: cfg.CertFile, ClientKey: cfg.KeyFile}
	kc.Contexts["faults"] = &clientcmdapi.Context{Cluster: "faults", AuthInfo: "agent"}
	kc.CurrentContext = "faults"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		a.t.Fatal(err)
	}
	return path
}

// logText is mirrorlet's log so far.
func (a *agent) logText() string {
	data, _ := os.ReadFile(filepath.Join(a.Dir, "mirrorlet.log"))
	return string(data)
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
// or not, several of one name too), through CRI.
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
