package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TestKubectlLogs reads a static pod's logs as users do, with kubectl
// through the API server, which calls mirrorlet's node API as it calls a
// kubelet's (its kubelet client certificate, mirrorlet's serving
// certificate verified against --kubelet-certificate-authority): plain,
// followed across a container restart, the previous attempt, --tail,
// --timestamps, --since and --since-time.
func TestKubectlLogs(t *testing.T) {
	n := startNode(t, withNodeAPI(certFiles))
	port := freePort(t)
	n.writeManifest("static-web.yaml", webPod("static-web", port))
	m := n.waitRunning("static-web", 2*time.Minute)
	mirror, starting := n.mirrorName("static-web"), fmt.Sprintf("webserver starting on port %d", port)
	eventually(t, 30*time.Second, "the starting line in kubectl logs", func() bool {
		out, err := kubectlLogs(mirror)
		return err == nil && strings.Contains(out, starting)
	})

	f := kubectlFollow(t, mirror)
	eventually(t, 30*time.Second, "a request in kubectl logs -f", func() bool {
		_, _ = get(port, "/marker-xyz")
		return strings.Contains(f.output(), "request GET /marker-xyz")
	})
	ctr(t, "tasks", "kill", "-s", "SIGKILL", containerID(m.Status.ContainerStatuses[0].ContainerID))
	eventually(t, time.Minute, "restartCount 1", func() bool {
		m = n.mirror("static-web")
		return m != nil && len(m.Status.ContainerStatuses) == 1 && m.Status.ContainerStatuses[0].RestartCount == 1
	})
	eventually(t, 30*time.Second, "the new attempt in kubectl logs -f", func() bool {
		_, _ = get(port, "/after-restart")
		out := f.output()
		return strings.Count(out, starting) == 2 && strings.Contains(out, "request GET /after-restart")
	})

	if prev, err := kubectlLogs(mirror, "--previous"); err != nil || !strings.Contains(prev, starting) || !strings.Contains(prev, "/marker-xyz") {
		t.Fatalf("kubectl logs --previous (%v):\n%s\nwant the first attempt", err, prev)
	}
	latest, err := kubectlLogs(mirror)
	if err != nil || !strings.HasPrefix(latest, starting) || strings.Contains(latest, "/marker-xyz") {
		t.Fatalf("kubectl logs (%v):\n%s\nwant the second attempt only", err, latest)
	}
	if last, err := kubectlLogs(mirror, "--tail=1", "--timestamps"); err != nil || !lastLine.MatchString(last) {
		t.Fatalf("kubectl logs --tail=1 --timestamps (%v):\n%q\nwant one line matching %s", err, last, lastLine)
	}
	if all, err := kubectlLogs(mirror, "--since=1h"); err != nil || all != latest {
		t.Fatalf("kubectl logs --since=1h (%v):\n%s\nwant all of\n%s", err, all, latest)
	}
	// A time between two requests: only the later one is shown. Log times
	// have nanoseconds, --since-time seconds: wait for the next second.
	since := time.Now().Truncate(time.Second).Add(time.Second)
	eventually(t, 5*time.Second, "the clock past "+since.String(), func() bool { return time.Now().After(since) })
	eventually(t, 30*time.Second, "the late request in kubectl logs", func() bool {
		_, _ = get(port, "/after-since")
		out, err := kubectlLogs(mirror, "--since-time="+since.Format(time.RFC3339))
		return err == nil && strings.HasPrefix(out, "request GET /after-since")
	})
	if out, err := kubectlLogs(mirror, "--since=1s", "--limit-bytes=7"); err != nil || len(out) > 7 {
		t.Fatalf("kubectl logs --limit-bytes=7 (%v): %q", err, out)
	}
	// The pod leaves the node: kubectl logs -f ends.
	f.stillRunning(t)
	if err := os.Remove(filepath.Join(n.manifests, "static-web.yaml")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.exited:
	case <-time.After(time.Minute):
		t.Fatal("kubectl logs -f did not end when the pod was removed")
	}
}

// TestNodeAPIRefusesCallers checks who may read logs: a user with only
// pods/get is refused by the API server; mirrorlet itself refuses a call
// without credentials (401) and an authenticated one without nodes/proxy
// (403), through a token (TokenReview) or a client certificate (its client
// CA); with nodes/proxy it answers, 400 for bad parameters and 404 for a
// pod it does not run.
func TestNodeAPIRefusesCallers(t *testing.T) {
	n := startNode(t, withNodeAPI(certFiles))
	port := freePort(t)
	n.writeManifest("static-web.yaml", webPod("static-web", port))
	n.waitRunning("static-web", 2*time.Minute)
	mirror := n.mirrorName("static-web")

	podReader := addUser(t, "e2e-pod-reader", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}})
	if out, err := kubectlLogsAs(podReader, mirror); err == nil || !strings.Contains(out, `cannot get resource "pods/log"`) {
		t.Fatalf("kubectl logs as a pods/get-only user (%v): %s\nwant refused by the API server", err, out)
	}

	base := fmt.Sprintf("https://127.0.0.1:%d", n.apiPort)
	logsPath := "/containerLogs/default/" + mirror + "/web"
	anon, err := nodeAPIClient("", "")
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, anon, "", base+logsPath, 401, "Unauthorized")

	lacking := serviceAccountToken(t, "e2e-no-proxy")
	expectStatus(t, anon, lacking, base+logsPath, 403,
		"Forbidden (user=system:serviceaccount:default:e2e-no-proxy, verb=get, resource=nodes, subresource(s)=[proxy])")
	certFile, keyFile, err := kubeletClientCA.clientCert("e2e-cert-user")
	if err != nil {
		t.Fatal(err)
	}
	certClient, err := nodeAPIClient(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, certClient, "", base+logsPath, 403, "Forbidden (user=e2e-cert-user, verb=get")

	allowed := serviceAccountToken(t, "e2e-node-proxy")
	grant(t, "User", "system:serviceaccount:default:e2e-node-proxy",
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"}})
	eventually(t, 30*time.Second, "the granted token answered", func() bool {
		code, body := call(anon, allowed, base+logsPath)
		return code == 200 && strings.Contains(body, "webserver starting")
	})
	expectStatus(t, anon, allowed, base+logsPath+"?tailLines=-1", 400, "tailLines: Invalid value: -1")
	expectStatus(t, anon, allowed, base+logsPath+"?limitBytes=lots", 400, "limitBytes")
	expectStatus(t, anon, allowed, base+logsPath+"?sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z", 400, "at most one of")
	expectStatus(t, anon, allowed, base+"/containerLogs/default/nope-"+n.name+"/web", 404, fmt.Sprintf("pod %q does not exist", "nope-"+n.name))
	expectStatus(t, anon, allowed, base+"/containerLogs/default/"+mirror+"/nope", 404, `container "nope" not found`)
	expectStatus(t, anon, allowed, base+"/containerLogs/kube-system/"+mirror+"/web", 404, "does not exist")
	// exec needs create: get on nodes/proxy is not enough, even over GET.
	expectStatus(t, anon, allowed, base+"/exec/default/"+mirror+"/web?command=id", 403, "verb=create")
	if code, body := call(anon, allowed, base+"/pods"); code != 200 || !strings.Contains(body, `"name":"`+mirror+`"`) {
		t.Fatalf("GET /pods: %d %s", code, body)
	}
}

// kubectlLogs runs `kubectl logs POD args...` as the suite's admin.
func kubectlLogs(pod string, args ...string) (string, error) {
	return kubectlLogsAs(kubeconfig, pod, args...)
}

func kubectlLogsAs(kubeconfigFile, pod string, args ...string) (string, error) {
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfigFile, "logs", pod}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("kubectl logs %s %s: %w", pod, strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

// followedKubectl is a running `kubectl logs -f`.
type followedKubectl struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	stderr bytes.Buffer
	exited chan struct{}
}

func kubectlFollow(t *testing.T, pod string) *followedKubectl {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	f := &followedKubectl{exited: make(chan struct{})}
	f.cmd = exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "logs", "-f", pod)
	f.cmd.Stdout, f.cmd.Stderr = f, &f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.cmd.Wait(); close(f.exited) }()
	t.Cleanup(func() {
		cancel()
		<-f.exited
		if t.Failed() {
			t.Logf("kubectl logs -f output:\n%s\nstderr:\n%s", f.output(), f.stderr.String())
		}
	})
	return f
}

func (f *followedKubectl) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.Write(p)
}

func (f *followedKubectl) output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

// stillRunning checks that kubectl logs -f still follows.
func (f *followedKubectl) stillRunning(t *testing.T) {
	t.Helper()
	select {
	case <-f.exited:
		t.Fatalf("kubectl logs -f ended early: %s", f.stderr.String())
	default:
	}
}

// addUser adds a user with rules on the default namespace and returns
// its kubeconfig file.
func addUser(t *testing.T, name string, rules ...rbacv1.PolicyRule) string {
	t.Helper()
	u, err := testEnv.ControlPlane.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Rules: rules}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: name}},
	}
	if err := k8s.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	return path
}

// grant gives subject (a User) a ClusterRole with rules.
func grant(t *testing.T, kind, subject string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	name := "e2e-grant-" + strings.ReplaceAll(subject, ":", "-")
	ctx := t.Context()
	if err := k8s.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: kind, Name: subject}},
	}); err != nil {
		t.Fatal(err)
	}
}

// serviceAccountToken creates a ServiceAccount in default and returns a
// token for it from the TokenRequest API.
func serviceAccountToken(t *testing.T, name string) string {
	t.Helper()
	ctx := t.Context()
	if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(testEnv.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// call GETs url with the bearer token (if any) and returns the status and
// body; 0 when the call failed.
func call(c *http.Client, token, url string) (int, string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}

func expectStatus(t *testing.T, c *http.Client, token, url string, code int, body string) {
	t.Helper()
	if got, b := call(c, token, url); got != code || !strings.Contains(b, body) {
		t.Fatalf("GET %s: %d %q, want %d with %q", url, got, b, code, body)
	}
}
