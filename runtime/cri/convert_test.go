package cri

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/mirrorlet/mirrorlet/manifest"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "one", "B": "two"}
	for in, want := range map[string]string{
		"plain":          "plain",
		"$(A)":           "one",
		"$(A)-$(B)":      "one-two",
		"$$(A)":          "$(A)",
		"$(MISSING)":     "$(MISSING)",
		"$(A":            "$(A",
		"$()":            "$()",
		"cost $5":        "cost $5",
		"trailing $":     "trailing $",
		"$(A)$(A)$$":     "oneone$",
		"nested $($(A))": "nested $($(A))",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "kube-system", UID: "abc",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"note": "hi"}},
		Spec: corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "c",
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
			}}}},
	}
}

func TestContainerEnv(t *testing.T) {
	r := &Runtime{opts: Options{NodeName: "node1", NodeIP: "192.0.2.7"}}
	pod := testPod()
	c := &pod.Spec.Containers[0]
	field := func(p string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: p}}
	}
	c.Env = []corev1.EnvVar{
		{Name: "X", Value: "1"},
		{Name: "Y", Value: "$(X)2"},
		{Name: "NAME", ValueFrom: field("metadata.name")},
		{Name: "NS", ValueFrom: field("metadata.namespace")},
		{Name: "UID", ValueFrom: field("metadata.uid")},
		{Name: "APP", ValueFrom: field("metadata.labels['app']")},
		{Name: "NOTE", ValueFrom: field("metadata.annotations['note']")},
		{Name: "NODE", ValueFrom: field("spec.nodeName")},
		{Name: "HOST", ValueFrom: field("status.hostIP")},
		{Name: "POD", ValueFrom: field("status.podIP")},
		{Name: "CPU_M", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
			Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
		{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory"}}},
		{Name: "X", Value: "override"},
	}
	envs, vars, err := r.containerEnv(pod, c, "10.0.0.9")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var order []string
	for _, kv := range envs {
		got[kv.Key] = string(kv.Value)
		order = append(order, kv.Key)
	}
	want := map[string]string{"X": "override", "Y": "12", "NAME": "web-node1", "NS": "kube-system", "UID": "abc",
		"APP": "web", "NOTE": "hi", "NODE": "node1", "HOST": "192.0.2.7", "POD": "10.0.0.9",
		"CPU_M": "250", "MEM": "134217728"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if order[0] != "X" || len(order) != len(want) {
		t.Errorf("env order %v: want first definitions, no duplicates", order)
	}
	if vars["Y"] != "12" {
		t.Errorf("vars for command expansion: %v", vars)
	}

	c.Env = []corev1.EnvVar{{Name: "BAD", ValueFrom: field("status.phase")}}
	if _, _, err := r.containerEnv(pod, c, ""); err == nil || !strings.Contains(err.Error(), "status.phase") {
		t.Errorf("unsupported fieldRef: err = %v, want one naming status.phase", err)
	}
}

func TestResourcesAndQoS(t *testing.T) {
	pod := testPod()
	res := resources(pod, &pod.Spec.Containers[0])
	if res.CpuShares != 256 || res.CpuQuota != 0 || res.MemoryLimitInBytes != 128<<20 {
		t.Errorf("burstable resources = shares %d quota %d mem %d", res.CpuShares, res.CpuQuota, res.MemoryLimitInBytes)
	}
	if q := qosClass(pod); q != corev1.PodQOSBurstable {
		t.Errorf("qos = %s, want Burstable", q)
	}
	if res.OomScoreAdj < 3 || res.OomScoreAdj > 999 {
		t.Errorf("burstable oomScoreAdj = %d, want within [3, 999]", res.OomScoreAdj)
	}

	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
	// The API server would default requests to limits; mirrorlet's
	// defaulting does too, and without it a limit still counts as request.
	pod.Spec.Containers[0].Resources.Requests = pod.Spec.Containers[0].Resources.Limits.DeepCopy()
	res = resources(pod, &pod.Spec.Containers[0])
	if res.CpuShares != 1536 || res.CpuPeriod != 100000 || res.CpuQuota != 150000 || res.OomScoreAdj != -997 {
		t.Errorf("guaranteed: %+v", res)
	}

	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
	res = resources(pod, &pod.Spec.Containers[0])
	if res.CpuShares != 2 || res.OomScoreAdj != 1000 {
		t.Errorf("best effort: shares %d oom %d, want 2 and 1000", res.CpuShares, res.OomScoreAdj)
	}
	pod.Spec.PriorityClassName = "system-node-critical"
	if res = resources(pod, &pod.Spec.Containers[0]); res.OomScoreAdj != -997 {
		t.Errorf("critical pod oomScoreAdj = %d, want -997", res.OomScoreAdj)
	}
}

func TestCheckHostPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hp := func(p string, typ corev1.HostPathType) *corev1.HostPathVolumeSource {
		return &corev1.HostPathVolumeSource{Path: p, Type: &typ}
	}
	for _, tc := range []struct {
		h       *corev1.HostPathVolumeSource
		wantErr string
	}{
		{&corev1.HostPathVolumeSource{Path: filepath.Join(dir, "missing")}, ""},
		{hp(dir, corev1.HostPathDirectory), ""},
		{hp(file, corev1.HostPathDirectory), "is not a directory"},
		{hp(filepath.Join(dir, "nope"), corev1.HostPathDirectory), "does not exist"},
		{hp(file, corev1.HostPathFile), ""},
		{hp(dir, corev1.HostPathSocket), "is not a socket"},
		{hp(filepath.Join(dir, "new", "d"), corev1.HostPathDirectoryOrCreate), ""},
		{hp(filepath.Join(dir, "new2", "f"), corev1.HostPathFileOrCreate), ""},
		{hp(dir, corev1.HostPathFileOrCreate), "is a directory"},
		{hp(file, corev1.HostPathDirectoryOrCreate), "is not a directory"},
	} {
		err := checkHostPath(tc.h)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s %v: %v", tc.h.Path, tc.h.Type, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s %v: err = %v, want %q", tc.h.Path, *tc.h.Type, err, tc.wantErr)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "new", "d")); err != nil || !fi.IsDir() {
		t.Errorf("DirectoryOrCreate did not create a directory: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "new2", "f")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("FileOrCreate did not create a file: %v", err)
	}
}

func TestContainerSecurity(t *testing.T) {
	spec := &corev1.PodSpec{HostPID: true, SecurityContext: &corev1.PodSecurityContext{
		RunAsUser: ptr.To[int64](1000), SupplementalGroups: []int64{5}, FSGroup: ptr.To[int64](7),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}}
	c := &corev1.Container{Name: "c", SecurityContext: &corev1.SecurityContext{
		RunAsUser: ptr.To[int64](2000), ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}}}}
	sc, err := containerSecurity(spec, c, nil, "/var/lib/mirrorlet")
	if err != nil {
		t.Fatal(err)
	}
	if sc.RunAsUser.GetValue() != 2000 || !sc.ReadonlyRootfs || !sc.NoNewPrivs ||
		sc.NamespaceOptions.Pid != runtimeapi.NamespaceMode_NODE || len(sc.SupplementalGroups) != 2 ||
		sc.Seccomp.GetProfileType() != runtimeapi.SecurityProfile_RuntimeDefault ||
		sc.Capabilities.AddCapabilities[0] != "NET_ADMIN" || len(sc.MaskedPaths) == 0 {
		t.Errorf("security context = %+v", sc)
	}

	c.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	if sc, _ = containerSecurity(spec, c, nil, ""); !sc.Privileged || len(sc.MaskedPaths) != 0 {
		t.Errorf("privileged: %+v, want privileged without masked paths", sc)
	}

	spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}
	c.SecurityContext = nil
	for _, tc := range []struct {
		image *runtimeapi.Image
		ok    bool
	}{
		{&runtimeapi.Image{Uid: &runtimeapi.Int64Value{Value: 0}}, false},
		{&runtimeapi.Image{Uid: &runtimeapi.Int64Value{Value: 65532}}, true},
		{&runtimeapi.Image{Username: "nobody"}, false},
		{&runtimeapi.Image{}, false},
	} {
		_, err := containerSecurity(spec, c, tc.image, "")
		if (err == nil) != tc.ok {
			t.Errorf("runAsNonRoot with image %+v: err = %v, want ok=%v", tc.image, err, tc.ok)
		}
	}
}

func TestSocketPath(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///run/containerd/containerd.sock": "/run/containerd/containerd.sock",
		"/run/crio/crio.sock":                    "/run/crio/crio.sock",
	} {
		if got, err := socketPath(in); err != nil || got != want {
			t.Errorf("socketPath(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"tcp://1.2.3.4:5", "unix://relative", "npipe:////./pipe/x"} {
		if _, err := socketPath(bad); err == nil {
			t.Errorf("socketPath(%q) accepted", bad)
		}
	}
}

// TestFillsEveryFieldValidationAccepts ties manifest validation to the
// runtime: every downward API path and resource it lets through is filled.
func TestFillsEveryFieldValidationAccepts(t *testing.T) {
	r := &Runtime{opts: Options{NodeName: "node1", NodeIP: "192.0.2.7"}}
	pod := testPod()
	for _, p := range manifest.SupportedFieldPaths {
		p = strings.ReplaceAll(p, "<KEY>", "app")
		if _, err := r.fieldRef(pod, p, "10.0.0.9"); err != nil {
			t.Errorf("validation accepts fieldRef %q, the runtime does not: %v", p, err)
		}
	}
	for _, res := range manifest.SupportedResourceFields {
		if _, err := resourceField(pod, &pod.Spec.Containers[0], &corev1.ResourceFieldSelector{Resource: res}); err != nil {
			t.Errorf("validation accepts resourceFieldRef %q, the runtime does not: %v", res, err)
		}
	}
}
