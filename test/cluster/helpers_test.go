package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// webPod is a static pod running the test web server in the pod network.
func webPod(name string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:  "web",
				Image: registry.Ref("webserver"),
				Args:  []string{"--port", "8080", "--message", name},
			}},
		},
	}
}

// getPod returns the pod, or nil when there is none.
func getPod(t testing.TB, namespace, name string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{}
	err := admin.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, p)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Logf("reading pod %s/%s: %v", namespace, name, err)
		return nil
	}
	return p
}

// running reports whether p is Running with every container ready.
func running(p *corev1.Pod) bool {
	if p == nil || p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready {
			return false
		}
	}
	return true
}

// waitMirrorsRunning waits until the mirrors of pods on n are Running and
// ready, and returns them by static pod name.
func waitMirrorsRunning(t testing.TB, n *nodetest.Mirrorlet, timeout time.Duration, pods ...string) map[string]*corev1.Pod {
	t.Helper()
	out := map[string]*corev1.Pod{}
	nodetest.Eventually(t, timeout, fmt.Sprintf("the mirrors of %v on %s Running", pods, n.Name()), func() bool {
		for _, name := range pods {
			m := getPod(t, "default", name+"-"+n.Name())
			if !running(m) {
				return false
			}
			out[name] = m
		}
		return true
	})
	return out
}

// containers returns the container IDs of p's status, by container name,
// and fails the test when one has restarted.
func containers(t testing.TB, p *corev1.Pod) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.RestartCount != 0 {
			t.Errorf("container %s of %s restarted (restartCount %d)", cs.Name, p.Name, cs.RestartCount)
		}
		out[cs.Name] = cs.ContainerID
	}
	return out
}

// sandboxes returns the runtime's sandbox IDs of n's pods, by pod name.
func sandboxes(n *nodetest.Mirrorlet) map[string]string {
	out := map[string]string{}
	for name, p := range n.RuntimePods() {
		out[name] = p.SandboxID
	}
	return out
}

// auditEvent is the part of an audit.k8s.io/v1 Event the tests read.
type auditEvent struct {
	Verb  string `json:"verb"`
	Stage string `json:"stage"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// auditEvents returns the completed requests of the API server's audit
// log (pod and node writes), oldest first.
func auditEvents(t testing.TB) []auditEvent {
	t.Helper()
	f, err := os.Open(auditLog)
	if err != nil {
		t.Fatalf("reading the audit log: %v", err)
	}
	defer func() { _ = f.Close() }()
	var out []auditEvent
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		var e auditEvent
		if json.Unmarshal(s.Bytes(), &e) == nil && e.Stage == "ResponseComplete" {
			out = append(out, e)
		}
	}
	return out
}

// deleters returns who deleted resource namespace/name successfully, in
// the API server's audit log, oldest first.
func deleters(t testing.TB, resource, namespace, name string) []string {
	t.Helper()
	return deletersIn(auditEvents(t), resource, namespace, name)
}

// deletersIn returns who deleted resource namespace/name successfully in
// events.
func deletersIn(events []auditEvent, resource, namespace, name string) []string {
	var users []string
	for _, e := range events {
		r := e.ObjectRef
		if e.Verb == "delete" && r.Resource == resource && r.Subresource == "" && r.Namespace == namespace &&
			r.Name == name && e.ResponseStatus.Code < 300 {
			users = append(users, e.User.Username)
		}
	}
	return users
}

// writeFileAtomic writes pod as YAML to path (write, then rename), as an
// editor or a config tool would.
func writeFileAtomic(t *testing.T, path string, pod *corev1.Pod) {
	t.Helper()
	data, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(filepath.Dir(path)), filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func removeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}
