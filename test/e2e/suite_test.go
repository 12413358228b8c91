package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/mirrorlet/mirrorlet/runtime/cri"
	"github.com/mirrorlet/mirrorlet/test/images"
	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// What the suite shares; set up once in TestMain.
var (
	k8s        client.Client
	kubeconfig string
	kubectl    string
	binary     string
	registry   *images.Registry
	ctdDir     string
	ctd        *nodetest.Containerd
	endpoint   string
	workDir    string
	// node reads the suite's containerd directly, as a check behind
	// mirrorlet's back.
	nodeRuntime *cri.Runtime
	nodeSeq     atomic.Int32
	// runtimeVersion is the suite's containerd as its CRI reports it,
	// "containerd://v2.4.2" (built, the default) or "containerd://1.6.20~ds1"
	// (Debian's, with MIRRORLET_CONTAINERD=1.6).
	runtimeVersion string
)

// containerd16 is true when the suite runs on Debian's containerd 1.6 (no
// CRI container events) rather than the 2.x that hack/containerd.sh builds.
var containerd16 = os.Getenv("MIRRORLET_CONTAINERD") == "1.6"

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test-e2e`")
		return 1
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the e2e suite runs containers and needs root: run `sudo make test-e2e`")
		return 1
	}
	kubectl = filepath.Join(assets, "kubectl")
	var err error
	// Short: containerd's socket path lives under it.
	if workDir, err = os.MkdirTemp("/tmp", "ml-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(workDir) }()
	ctx := context.Background()

	step := func(what string, f func() error) bool {
		start := time.Now()
		if err := f(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e setup: %s: %v\n", what, err)
			return false
		}
		fmt.Fprintf(os.Stderr, "e2e setup: %s (%s)\n", what, time.Since(start).Round(time.Millisecond))
		return true
	}
	env := &envtest.Environment{}
	if !step("start kube-apiserver and etcd", func() error {
		if err := configureKubeletAPI(env, filepath.Join(workDir, "pki")); err != nil {
			return err
		}
		cfg, err := env.Start()
		if err != nil {
			return err
		}
		if k8s, err = client.New(cfg, client.Options{}); err != nil {
			return err
		}
		if err := authorizeKubeletClient(ctx); err != nil {
			return err
		}
		kubeconfig, err = writeKubeconfig(env)
		return err
	}) {
		return 1
	}
	defer func() { _ = env.Stop() }()
	if !step("build the test images and serve them from a local registry", func() error {
		if registry, err = images.Serve("127.0.0.1:0"); err != nil {
			return err
		}
		return images.BuildAndPush(ctx, registry, workDir)
	}) {
		return 1
	}
	defer func() { _ = registry.Close() }()
	if !step("build mirrorlet", func() error {
		binary, err = nodetest.BuildMirrorlet(workDir)
		return err
	}) {
		return 1
	}
	ctdDir = filepath.Join(workDir, "ctd")
	if !step("start a private containerd", func() error {
		if ctd, err = nodetest.StartContainerd(ctx, ctdDir, registry.Host); err != nil {
			return err
		}
		endpoint, nodeRuntime = ctd.Endpoint, ctd.Runtime
		runtimeVersion, err = nodeRuntime.Version(ctx)
		fmt.Fprintf(os.Stderr, "e2e setup: the runtime is %s\n", runtimeVersion)
		return err
	}) {
		return 1
	}
	defer func() {
		if err := ctd.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping containerd: %v\n", err)
		}
	}()
	return m.Run()
}

func repoPath(p string) string { return nodetest.RepoPath(p) }

func writeKubeconfig(env *envtest.Environment) (string, error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(workDir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// node is one mirrorlet process run by a test, with its own node name,
// manifest directory, root and log directories, sharing the suite's
// containerd.
type node struct {
	t         testing.TB
	name      string
	dir       string
	manifests string
	logs      string
	root      string
	cmd       *exec.Cmd
	exited    chan struct{}
	log       *os.File
	// apiPort is the node API's port; 0 when it is off (see withNodeAPI).
	apiPort    int
	extraFlags []string
	// kubeconfig, when set, replaces the suite's admin kubeconfig.
	kubeconfig string
	// sysProcAttr, when set, is how mirrorlet's process is started (in
	// namespaces of its own, say).
	sysProcAttr *syscall.SysProcAttr
}

// nodeOption changes a node before its mirrorlet starts.
type nodeOption func(*node)

// startNode starts mirrorlet for a new node; it is stopped (and its pods
// with it, by removing every manifest first) when the test ends.
func startNode(t testing.TB, opts ...nodeOption) *node {
	t.Helper()
	return startNodeAs(t, fmt.Sprintf("e2e-%d", nodeSeq.Add(1)), "", opts...)
}

// startNodeAs is startNode for node name with its own kubeconfig (the
// suite's admin one when empty).
func startNodeAs(t testing.TB, name, kubeconfig string, opts ...nodeOption) *node {
	t.Helper()
	n := &node{t: t, name: name, kubeconfig: kubeconfig}
	n.dir = t.TempDir()
	n.manifests = filepath.Join(n.dir, "manifests")
	n.logs = filepath.Join(n.dir, "logs")
	n.root = filepath.Join(n.dir, "root")
	if err := os.MkdirAll(n.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(n)
	}
	n.start()
	t.Cleanup(n.cleanup)
	return n
}

func (n *node) start() {
	n.t.Helper()
	logFile, err := os.OpenFile(filepath.Join(n.dir, "mirrorlet.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	n.log = logFile
	n.cmd = exec.Command(binary, n.flags()...)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	n.cmd.SysProcAttr = n.sysProcAttr
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(n.cmd, n.exited)
}

func (n *node) flags() []string {
	kc := kubeconfig
	if n.kubeconfig != "" {
		kc = n.kubeconfig
	}
	flags := []string{
		"--kubeconfig", kc, "--node-name", n.name,
		"--pod-manifest-path", n.manifests, "--file-check-frequency", "5s",
		"--container-runtime-endpoint", endpoint,
		"--root-dir", n.root, "--pod-logs-dir", n.logs,
		"--healthz-bind-address", "0", "--metrics-bind-address", "0",
	}
	if n.apiPort == 0 {
		flags = append(flags, "--port", "0")
	}
	return append(flags, n.extraFlags...)
}

// stop ends mirrorlet with sig and waits for it to exit.
func (n *node) stop(sig syscall.Signal) {
	n.t.Helper()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
		n.t.Errorf("mirrorlet did not exit within 30s of %s", sig)
	}
	n.cmd = nil
	_ = n.log.Close()
}

// cleanup removes every manifest, waits for the pods to stop, then stops
// mirrorlet. On failure it prints mirrorlet's log.
func (n *node) cleanup() {
	entries, _ := os.ReadDir(n.manifests)
	for _, e := range entries {
		_ = os.Remove(filepath.Join(n.manifests, e.Name()))
	}
	if n.cmd != nil && len(entries) > 0 {
		_ = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true,
			func(context.Context) (bool, error) { return len(n.runtimePods()) == 0, nil })
		// subPath bind mounts go with the pods' data, just after the pods.
		_ = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true,
			func(context.Context) (bool, error) { return len(mountsUnder(n.t, n.root)) == 0, nil })
	}
	n.stop(syscall.SIGTERM)
	// Whatever is still mounted beneath the node's directory (a test's own
	// mounts, or a failed test's) goes before the directory is removed, so
	// that removing it never deletes through a mount.
	for _, p := range mountsUnder(n.t, n.dir) {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
	if n.t.Failed() {
		if data, err := os.ReadFile(filepath.Join(n.dir, "mirrorlet.log")); err == nil {
			lines := strings.Split(string(data), "\n")
			n.t.Logf("mirrorlet log (last 60 lines):\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	}
}

// writeManifest writes pod as name.yaml into the manifest directory
// atomically (write then rename), as a user's editor or config tool would.
func (n *node) writeManifest(file string, pod *corev1.Pod) {
	n.t.Helper()
	data, err := yaml.Marshal(pod)
	if err != nil {
		n.t.Fatal(err)
	}
	tmp := filepath.Join(n.dir, file+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(n.manifests, file)); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) mirrorName(pod string) string { return pod + "-" + n.name }

// mirror returns the mirror of pod, or nil when there is none.
func (n *node) mirror(pod string) *corev1.Pod {
	n.t.Helper()
	var p corev1.Pod
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: n.mirrorName(pod)}, &p)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		n.t.Logf("reading mirror: %v", err)
		return nil
	}
	return &p
}

// waitRunning waits until the mirror of pod is Running with every
// container ready and returns it.
func (n *node) waitRunning(pod string, timeout time.Duration) *corev1.Pod {
	n.t.Helper()
	var m *corev1.Pod
	eventually(n.t, timeout, "mirror "+n.mirrorName(pod)+" Running and ready", func() bool {
		m = n.mirror(pod)
		if m == nil || m.Status.Phase != corev1.PodRunning || len(m.Status.ContainerStatuses) == 0 {
			return false
		}
		for _, cs := range m.Status.ContainerStatuses {
			if !cs.Ready {
				return false
			}
		}
		return true
	})
	return m
}

// runtimePods lists this node's pods in containerd (by the pod-name label
// suffix, since every node's pods share the containerd).
func (n *node) runtimePods() []string {
	pods, err := nodeRuntime.ListPods(context.Background())
	if err != nil {
		n.t.Logf("listing runtime pods: %v", err)
		return []string{"<error>"}
	}
	var out []string
	for _, p := range pods {
		if strings.HasSuffix(p.Name, "-"+n.name) {
			out = append(out, p.Name+"/"+p.SandboxID)
		}
	}
	return out
}

// eventually polls cond every 100 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	nodetest.Eventually(t, timeout, what, cond)
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// get fetches http://127.0.0.1:port/path and returns the body, or an error
// when nothing answers or the status is not 200.
func get(port int, path string) (string, error) { return nodetest.Get(port, path) }

// answer waits until the server of a container reported Running answers
// GET path on port (the mirror says Running once the process started, a
// moment before it listens) and returns the body.
func answer(t testing.TB, port int, path string) string {
	t.Helper()
	var body string
	var err error
	eventually(t, 30*time.Second, fmt.Sprintf("an answer on :%d%s", port, path), func() bool {
		body, err = get(port, path)
		return err == nil
	})
	return body
}

// freePort returns a TCP port nothing listens on now.
func freePort(t testing.TB) int { return nodetest.FreePort(t) }

// kubectlOut runs kubectl against the suite's API server.
func kubectlOut(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// ctr runs the ctr of the suite's containerd (its version) in the CRI
// namespace: how a test acts on the node behind mirrorlet's back.
func ctr(t testing.TB, args ...string) string { return ctd.Ctr(t, args...) }

// containerID strips the runtime scheme off a status containerID.
func containerID(s string) string {
	_, id, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	return id
}

// grepLines returns the lines of text containing sub.
func grepLines(text, sub string) []string {
	var out []string
	s := bufio.NewScanner(strings.NewReader(text))
	for s.Scan() {
		if strings.Contains(s.Text(), sub) {
			out = append(out, s.Text())
		}
	}
	return out
}
