package manifest

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// hostPathPod is a pod of node n1 mounting hostPath /etc/pki (and an
// unmounted /var/unused) with annotations.
func hostPathPod(t *testing.T, annotations map[string]string) *StaticPod {
	t.Helper()
	p := basePod()
	p.Annotations = annotations
	p.Spec.Volumes = append(p.Spec.Volumes,
		corev1.Volume{Name: "pki", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc/pki/"}}},
		corev1.Volume{Name: "unused", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/unused"}}})
	p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "pki", MountPath: "/pki"})
	sp, err := NewStaticPod(p, Identity{NodeName: "n1", Source: SourceFile, Origin: "web.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestOrderAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		// want: the substring of the one expected error, "" for none.
		want  string
		paths []string
		after []string
		wait  time.Duration
	}{
		{name: "none", wait: DefaultAfterTimeout},
		{name: "all", annotations: map[string]string{AnnotationRestartOnChange: "all"}, paths: []string{"/etc/pki"}, wait: DefaultAfterTimeout},
		{name: "list", annotations: map[string]string{AnnotationRestartOnChange: "/etc/pki/b.crt, /etc/pki/a.crt,/etc/pki/b.crt"},
			paths: []string{"/etc/pki/a.crt", "/etc/pki/b.crt"}, wait: DefaultAfterTimeout},
		{name: "relative path", annotations: map[string]string{AnnotationRestartOnChange: "pki/a.crt"},
			want: "must be an absolute path", wait: DefaultAfterTimeout},
		{name: "path outside the volumes", annotations: map[string]string{AnnotationRestartOnChange: "/var/unused/x"},
			want: `"/var/unused/x": is not inside a hostPath volume the pod mounts`, paths: []string{"/var/unused/x"}, wait: DefaultAfterTimeout},
		{name: "prefix is not inside", annotations: map[string]string{AnnotationRestartOnChange: "/etc/pki2/x"},
			want: "is not inside a hostPath volume", paths: []string{"/etc/pki2/x"}, wait: DefaultAfterTimeout},
		{name: "after with timeout", annotations: map[string]string{AnnotationAfter: "etcd, kms", AnnotationAfterTimeout: "90s"},
			after: []string{"etcd", "kms"}, wait: 90 * time.Second},
		{name: "after itself", annotations: map[string]string{AnnotationAfter: "web"},
			want: `"web": a pod cannot start after itself`, after: []string{"web"}, wait: DefaultAfterTimeout},
		{name: "after a bad name", annotations: map[string]string{AnnotationAfter: "Etcd_1"},
			want: "metadata.annotations[mirrorlet.io/after]: Invalid value: \"Etcd_1\"", after: []string{"Etcd_1"}, wait: DefaultAfterTimeout},
		{name: "bad timeout", annotations: map[string]string{AnnotationAfter: "etcd", AnnotationAfterTimeout: "5"},
			want:  "metadata.annotations[mirrorlet.io/after-timeout]: Invalid value: \"5\": must be a duration such as 2m or 90s",
			after: []string{"etcd"}, wait: DefaultAfterTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := hostPathPod(t, tc.annotations)
			errs := Validate(sp)
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("unexpected errors: %v", errs)
			case tc.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want)):
				t.Errorf("errors %v, want one saying %q", errs, tc.want)
			}
			if got := RestartOnChangePaths(sp.Pod); !slices.Equal(got, tc.paths) {
				t.Errorf("paths %v, want %v", got, tc.paths)
			}
			after, wait := StartAfter(sp.Pod)
			if !slices.Equal(after, tc.after) || wait != tc.wait {
				t.Errorf("after %v %s, want %v %s", after, wait, tc.after, tc.wait)
			}
		})
	}
}
