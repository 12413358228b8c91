package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

// manifestServer serves a manifest body that tests change.
type manifestServer struct {
	mu     sync.Mutex
	status int
	body   string
}

func (s *manifestServer) set(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *manifestServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.WriteHeader(s.status)
	_, _ = w.Write([]byte(s.body))
}

func withURL(url string) agentOption {
	return func(o *app.Options) { o.ManifestURL, o.HTTPCheckFrequency = url, 200*time.Millisecond }
}

func podList(pods ...string) string {
	return `{"apiVersion":"v1","kind":"PodList","items":[` + strings.Join(pods, ",") + `]}`
}

func jsonPod(name, image string, labels string) string {
	return fmt.Sprintf(`{"metadata":{"name":%q,"labels":{%s}},"spec":{"containers":[{"name":"c","image":%q}]}}`, name, labels, image)
}

func TestURLSource(t *testing.T) {
	srv := &manifestServer{status: 200, body: podList(jsonPod("fromurl", "nginx:1.27", `"src":"url"`), jsonPod("clash", "nginx:1.27", ""))}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	// Both new at start: the directory wins the tie with the URL.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "clash.yaml"), []byte(podManifest("clash", map[string]string{"src": "dir"}, "nginx:1.27")), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, newNodeName("url"), dir, nil, withURL(ts.URL))

	m := a.WaitMirror("fromurl", isRunning)
	if m.Annotations[manifest.AnnotationSource] != "http" || m.Labels["src"] != "url" {
		t.Errorf("URL pod mirror: source %q labels %v", m.Annotations[manifest.AnnotationSource], m.Labels)
	}
	clash := a.WaitMirror("clash", isRunning)
	if clash.Annotations[manifest.AnnotationSource] != "file" {
		t.Errorf("the directory must win a name clash, mirror source is %q", clash.Annotations[manifest.AnnotationSource])
	}
	waitNodeEvent(t, a.Node, "FailedLoadManifest", "clash.yaml")

	// The URL fails: its pods keep running and keep their mirrors.
	rp := a.WaitRunning("fromurl", 1)
	srv.set(http.StatusInternalServerError, "down")
	consistently(t, "URL pod kept while the URL fails", time.Second, func() bool {
		p, ok := a.RuntimePod("fromurl")
		return ok && p.SandboxID == rp.SandboxID
	})
	// The body turns invalid: kept, and said on the mirror.
	srv.set(200, `{"apiVersion":"v1","kind":"PodList","items":[{"metadata":{"name":"fromurl"},"spec":{"containerz":[]}}]}`)
	a.WaitMirror("fromurl", func(p *corev1.Pod) bool {
		c := condition(p, "mirrorlet.io/ManifestValid")
		return c != nil && c.Status == corev1.ConditionFalse && strings.Contains(c.Message, "containerz")
	})
	if p, ok := a.RuntimePod("fromurl"); !ok || p.SandboxID != rp.SandboxID {
		t.Fatalf("invalid URL body stopped the pod")
	}
	// An empty body means no URL pods.
	srv.set(200, "")
	a.WaitNoMirror("fromurl")
	a.WaitMirror("clash", nil)
}

func waitNodeEvent(t *testing.T, node, reason, contains string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s event on node %s mentioning %s", reason, node, contains), func() bool {
		var evs corev1.EventList
		if err := k8s.List(context.Background(), &evs); err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "Node" && e.InvolvedObject.Name == node && e.Reason == reason &&
				strings.Contains(e.Message, contains) {
				return true
			}
		}
		return false
	})
}

func TestMirrorRefusedByAdmissionKeepsPodRunning(t *testing.T) {
	ctx := context.Background()
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-forbidden-pods"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: `!has(object.metadata.labels) || !('forbidden' in object.metadata.labels)`,
				Message:    "pods labelled forbidden are not allowed here",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "no-forbidden-pods"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: policy.Name, ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(ctx, o) })
	}
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default", Labels: map[string]string{"forbidden": "x"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	eventually(t, "admission policy in force", func() bool {
		return k8s.Create(ctx, probe.DeepCopy(), client.DryRunAll) != nil
	})

	healthAddr := freeAddr(t)
	a := startAgent(t, newNodeName("refused"), "", nil, func(o *app.Options) { o.HealthzBindAddress = healthAddr })
	a.Write("bad.yaml", podManifest("bad", map[string]string{"forbidden": "x"}, "nginx:1.27"))
	a.WaitRunning("bad", 1)
	waitNodeEvent(t, a.Node, "FailedCreateMirrorPod", "pods labelled forbidden are not allowed here")
	eventually(t, "status shows the refusal", func() bool {
		code, body := httpGet("http://" + healthAddr + "/status")
		var rep app.StatusReport
		if code != 200 || json.Unmarshal([]byte(body), &rep) != nil || len(rep.Pods) != 1 {
			return false
		}
		return strings.HasPrefix(rep.Pods[0].Mirror, "refused by the API server") && rep.Pods[0].Runtime == "1/1 running"
	})
	if _, err := getNode(a.Node); err != nil {
		t.Fatal(err)
	}
}

func TestPartialWritesDoNotFlap(t *testing.T) {
	a := startAgent(t, newNodeName("flap"), "", nil)
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	a.WaitMirror("web", isRunning)
	rp := a.WaitRunning("web", 1)
	starts := a.RT.Starts(rp.UID)
	full := podManifest("web", nil, "nginx:1.27")
	path := filepath.Join(a.Dir, "web.yaml")
	// An editor that truncates, then writes in pieces.
	for i := range 5 {
		if err := os.WriteFile(path, []byte(full[:len(full)*i/5]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	consistently(t, "pod never stopped or restarted", time.Second, func() bool {
		p, ok := a.RuntimePod("web")
		return ok && p.SandboxID == rp.SandboxID && a.RT.Starts(rp.UID) == starts
	})
}

func TestFailedLoadManifestEventOnMirror(t *testing.T) {
	a := startAgent(t, newNodeName("loadevent"), "", nil)
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	m := a.WaitMirror("web", isRunning)
	a.Write("web.yaml", strings.Replace(podManifest("web", nil, "nginx:1.27"), "image:", "imagee:", 1))
	eventually(t, "FailedLoadManifest event on the mirror", func() bool {
		var evs corev1.EventList
		if err := k8s.List(context.Background(), &evs, client.InNamespace("default")); err != nil {
			return false
		}
		for _, e := range evs.Items {
			if string(e.InvolvedObject.UID) == m.Annotations["kubernetes.io/config.mirror"] && e.Reason == "FailedLoadManifest" && strings.Contains(e.Message, "imagee") {
				return true
			}
		}
		return false
	})
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// mirrorletBinary builds the real binary once.
func mirrorletBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mirrorlet-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "mirrorlet")
		out, err := exec.Command("go", "build", "-o", binaryPath, "github.com/mirrorlet/mirrorlet/cmd/mirrorlet").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

func TestValidateServerDryRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok.yaml"), []byte(podManifest("ok", nil, "nginx:1.27")), 0o644); err != nil {
		t.Fatal(err)
	}
	missingNS := strings.Replace(podManifest("elsewhere", nil, "nginx:1.27"), "metadata:\n", "metadata:\n  namespace: does-not-exist\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "ns.yaml"), []byte(missingNS), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(mirrorletBinary(t), "validate", "--node-name", "dry", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK: 2 static pods") {
		t.Fatalf("offline validate: %v\n%s", err, out)
	}
	out, err = exec.Command(mirrorletBinary(t), "validate", "--node-name", "dry", "--server-dry-run", "--kubeconfig", kubeconfig, dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), filepath.Join(dir, "ns.yaml")+": API server would refuse mirror pod does-not-exist/elsewhere-dry") ||
		strings.Contains(string(out), "ok.yaml") {
		t.Fatalf("server dry run: %v\n%s", err, out)
	}
	var pods corev1.PodList
	if err := k8s.List(context.Background(), &pods, client.MatchingFields{"spec.nodeName": "dry"}); err != nil || len(pods.Items) != 0 {
		t.Errorf("a dry run created pods: %v %d", err, len(pods.Items))
	}
}

// A new manifest that takes a running pod's name or host port is refused
// with an error naming both; the running pod keeps running, also when the
// clashing file was added while mirrorlet was stopped and sorts first.
func TestRunningPodWinsClash(t *testing.T) {
	node, rt := newNodeName("clash"), fake.New(nil)
	a := startAgent(t, node, "", rt)
	withPort := func(name, image string) string {
		return podManifest(name, nil, image) + "      hostPort: 8080\n"
	}
	a.Write("z.yaml", withPort("web", "nginx:1.27"))
	m := a.WaitMirror("web", isRunning)
	rp := a.WaitRunning("web", 1)
	untouched := func() bool {
		p, ok := a.RuntimePod("web")
		return ok && p.SandboxID == rp.SandboxID && p.UID == rp.UID && rt.Starts(rp.UID) == 1
	}

	a.Write("a.yaml", podManifest("web", nil, "nginx:1.28")) // same name, sorts first
	waitNodeEvent(t, node, "FailedLoadManifest", "a.yaml")
	a.Write("b.yaml", withPort("other", "nginx:1.27")) // same host port
	waitNodeEvent(t, node, "FailedLoadManifest", "b.yaml")
	consistently(t, "the running pod untouched, the newcomers not run", time.Second, func() bool {
		_, other := a.RuntimePod("other")
		return untouched() && !other && len(rt.Pods()) == 1
	})

	// Restart with a clashing file added meanwhile that sorts first.
	a.Stop()
	a.Remove("a.yaml")
	a.Remove("b.yaml")
	a.Write("0.yaml", podManifest("web", nil, "nginx:1.29"))
	b := startAgent(t, node, a.Dir, rt)
	waitNodeEvent(t, node, "FailedLoadManifest", "0.yaml")
	consistently(t, "the running pod untouched after the restart", 2*time.Second, untouched)
	if got := b.WaitMirror("web", nil); got.UID != m.UID || got.Spec.Containers[0].Image != "nginx:1.27" {
		t.Errorf("mirror %s image %s, want the running pod's (UID %s, nginx:1.27)", got.UID, got.Spec.Containers[0].Image, m.UID)
	}
}
