package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// TestPodSpecReachesTheContainer checks, from inside a running container,
// that the Pod spec fields static pods use are honoured: env (values,
// $(VAR) expansion, downward API), hostAliases, init containers, emptyDir, hostPath
// with subPath and readOnly, command/args expansion, runAsUser/Group,
// supplemental groups, readOnlyRootFilesystem and the memory limit.
func TestPodSpecReachesTheContainer(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	host := filepath.Join(n.dir, "hostdata")
	if err := os.MkdirAll(filepath.Join(host, "sub"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(host, 0o777); err != nil { // only readOnly may stop a write
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "sub", "hello.txt"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	created := filepath.Join(n.dir, "created-by-mirrorlet")
	pod := webPod("spec", port, "--message", "$(GREETING)")
	pod.Labels["tier"] = "backend"
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{SupplementalGroups: []int64{4242}}
	pod.Spec.HostAliases = []corev1.HostAlias{{IP: "127.0.0.1", Hostnames: []string{"kubernetes", "api.local"}}}
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: host, Type: ptr.To(corev1.HostPathDirectory)}}},
		{Name: "made", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: created, Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}},
	}
	pod.Spec.InitContainers = []corev1.Container{{
		Name: "init", Image: registry.Ref("webserver"),
		Args:         []string{"--write-file", "/scratch/init.txt", "--message", "init ran"},
		VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}},
	}}
	c := &pod.Spec.Containers[0]
	c.ImagePullPolicy = corev1.PullAlways
	c.Env = []corev1.EnvVar{
		{Name: "FIRST", Value: "one"},
		{Name: "GREETING", Value: "$(FIRST)-two $$(FIRST) $(UNDEFINED)"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "TIER", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}}},
		{Name: "MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
			Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
	}
	c.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
	c.VolumeMounts = []corev1.VolumeMount{
		{Name: "scratch", MountPath: "/scratch"},
		{Name: "host", MountPath: "/host", ReadOnly: true},
		{Name: "host", MountPath: "/sub", SubPath: "sub"},
		{Name: "made", MountPath: "/made"},
	}
	c.SecurityContext = &corev1.SecurityContext{
		RunAsUser: ptr.To[int64](1234), RunAsGroup: ptr.To[int64](5678),
		ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
	}
	n.writeManifest("spec.yaml", pod)
	m := n.waitRunning("spec", 2*time.Minute)
	if len(m.Status.InitContainerStatuses) != 1 || m.Status.InitContainerStatuses[0].State.Terminated == nil ||
		m.Status.InitContainerStatuses[0].State.Terminated.ExitCode != 0 {
		t.Errorf("init container status %+v, want terminated with exit code 0", m.Status.InitContainerStatuses)
	}

	fetch := func(path string) string {
		t.Helper()
		var body string
		eventually(t, 30*time.Second, "GET "+path, func() bool {
			var err error
			body, err = get(port, path)
			return err == nil
		})
		return body
	}
	env := fetch("/env")
	for _, want := range []string{
		"FIRST=one", "GREETING=one-two $(FIRST) $(UNDEFINED)",
		"POD_NAME=" + n.mirrorName("spec"), "POD_NS=default", "NODE=" + n.name,
		"POD_IP=" + m.Status.HostIP, "TIER=backend", "MEM_MI=64",
	} {
		if !containsLine(env, want) {
			t.Errorf("container env lacks %q:\n%s", want, env)
		}
	}
	if body := fetch("/"); !strings.HasPrefix(body, "one-two $(FIRST) $(UNDEFINED) from") {
		t.Errorf("args not expanded from env: %q", body)
	}
	if hosts := fetch("/file?path=/etc/hosts"); !strings.Contains(hosts, "127.0.0.1\tkubernetes\tapi.local") ||
		!strings.Contains(hosts, "localhost") {
		t.Errorf("/etc/hosts lacks the hostAliases or the node's entries:\n%s", hosts)
	}
	if got := fetch("/file?path=/scratch/init.txt"); got != "init ran" {
		t.Errorf("init container's file in the emptyDir: %q, want %q", got, "init ran")
	}
	if got := fetch("/file?path=/sub/hello.txt"); got != "from the host" {
		t.Errorf("hostPath subPath file: %q", got)
	}
	if fi, err := os.Stat(created); err != nil || !fi.IsDir() {
		t.Errorf("hostPath DirectoryOrCreate was not created: %v", err)
	}
	if got := fetch("/whoami"); !strings.Contains(got, "uid=1234 gid=5678") || !strings.Contains(got, "4242") {
		t.Errorf("whoami = %q, want uid=1234 gid=5678 and supplemental group 4242", got)
	}
	for path, why := range map[string]string{
		"/host/x":    "the readOnly hostPath mount",
		"/x":         "the read-only root filesystem",
		"/scratch/x": "",
	} {
		body, err := get(port, "/write?path="+path+"&data=y")
		switch {
		case why != "" && (err == nil || !strings.Contains(body, "read-only file system")):
			t.Errorf("writing %s (%s) = %q, %v; want a read-only file system error", path, why, body, err)
		case why == "" && err != nil:
			t.Errorf("writing to the emptyDir failed: %v", err)
		}
	}
	limit := ""
	for _, p := range []string{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"} {
		if body, err := get(port, "/file?path="+p); err == nil {
			limit = strings.TrimSpace(body)
			break
		}
	}
	if limit != fmt.Sprint(64<<20) {
		t.Errorf("memory limit seen in the container's cgroup = %q, want %d", limit, 64<<20)
	}
}

func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// TestPodNetworkThroughCNI: a pod without hostNetwork gets its own network
// namespace and IP from the runtime's CNI, shown on the mirror and
// reachable from the node.
func TestPodNetworkThroughCNI(t *testing.T) {
	n := startNode(t)
	pod := webPod("netpod", 8080)
	pod.Spec.HostNetwork = false
	n.writeManifest("netpod.yaml", pod)
	m := n.waitRunning("netpod", 2*time.Minute)
	if m.Status.PodIP == "" || m.Status.PodIP == m.Status.HostIP || !strings.HasPrefix(m.Status.PodIP, "10.88.") {
		t.Fatalf("podIP %q hostIP %q: want an IP from the CNI range 10.88.0.0/16", m.Status.PodIP, m.Status.HostIP)
	}
	eventually(t, 30*time.Second, "the pod answering on its own IP", func() bool {
		resp, err := httpClient.Get("http://" + m.Status.PodIP + ":8080/")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == 200
	})
	if body, err := get(8080, "/"); err == nil && strings.Contains(body, "from "+m.Name) {
		t.Errorf("the pod's server answers on the node's own loopback: it is not in its own network namespace")
	}
}
