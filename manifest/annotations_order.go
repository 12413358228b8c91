package manifest

import (
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Annotations of a static pod's manifest that ask mirrorlet to restart it
// when host files change, and to start it after other static pods.
const (
	// AnnotationRestartOnChange is "all" (every hostPath volume the pod's
	// containers mount) or a comma-separated list of absolute paths inside
	// those volumes: when the content of one changes, the pod's running
	// containers are restarted gracefully.
	AnnotationRestartOnChange = "mirrorlet.io/restart-on-change"
	// AnnotationAfter is a comma-separated list of other static pods (their
	// manifests' metadata.name, same namespace) that must be Ready before
	// the pod's containers start in a new sandbox (its first start, or
	// after a reboot of the node).
	AnnotationAfter = "mirrorlet.io/after"
	// AnnotationAfterTimeout bounds the wait of AnnotationAfter (a Go
	// duration, default DefaultAfterTimeout): then the pod starts anyway.
	AnnotationAfterTimeout = "mirrorlet.io/after-timeout"
	// RestartOnChangeAll is the value of AnnotationRestartOnChange that
	// watches every mounted hostPath volume.
	RestartOnChangeAll = "all"
	// DefaultAfterTimeout is the wait of AnnotationAfter when
	// AnnotationAfterTimeout is not set.
	DefaultAfterTimeout = 5 * time.Minute
)

// RestartOnChangePaths returns the host paths whose content change
// restarts pod (AnnotationRestartOnChange), sorted; nil when the pod did
// not opt in. Entries that are not absolute paths are skipped (Validate
// refuses them).
func RestartOnChangePaths(pod *corev1.Pod) []string {
	v, ok := pod.Annotations[AnnotationRestartOnChange]
	if !ok {
		return nil
	}
	if strings.TrimSpace(v) == RestartOnChangeAll {
		return mountedHostPaths(&pod.Spec)
	}
	var out []string
	for _, p := range splitList(v) {
		if filepath.IsAbs(p) {
			out = append(out, filepath.Clean(p))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// mountedHostPaths returns the paths of the hostPath volumes that a
// container mounts, sorted.
func mountedHostPaths(spec *corev1.PodSpec) []string {
	mounted := map[string]bool{}
	eachContainerOf(spec, func(c *corev1.Container) {
		for _, m := range c.VolumeMounts {
			mounted[m.Name] = true
		}
	})
	var out []string
	for _, v := range spec.Volumes {
		if v.HostPath != nil && mounted[v.Name] {
			out = append(out, filepath.Clean(v.HostPath.Path))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func eachContainerOf(spec *corev1.PodSpec, fn func(c *corev1.Container)) {
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			fn(&cs[i])
		}
	}
}

// StartAfter returns the static pods (metadata.name in the manifest) that
// must be Ready before pod starts in a new sandbox, and how long to wait for them at
// most. An invalid timeout gives the default (Validate refuses it).
func StartAfter(pod *corev1.Pod) (names []string, timeout time.Duration) {
	timeout = DefaultAfterTimeout
	if d, ok := durationAnnotation(pod, AnnotationAfterTimeout); ok {
		timeout = d
	}
	return splitList(pod.Annotations[AnnotationAfter]), timeout
}

// OwnName returns the manifest's metadata.name of a static pod: its name
// without the "-<node>" suffix.
func OwnName(pod *corev1.Pod) string {
	return strings.TrimSuffix(pod.Name, "-"+strings.ToLower(pod.Spec.NodeName))
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// validateOrderAnnotations checks AnnotationRestartOnChange,
// AnnotationAfter and AnnotationAfterTimeout. Names in AnnotationAfter
// that no other manifest defines, and cycles, are checked across
// manifests by the desired set.
func validateOrderAnnotations(p *corev1.Pod) field.ErrorList {
	ann := field.NewPath("metadata", "annotations")
	var errs field.ErrorList
	if v, ok := p.Annotations[AnnotationRestartOnChange]; ok {
		errs = append(errs, validateRestartOnChange(p, v, ann.Key(AnnotationRestartOnChange))...)
	}
	if v, ok := p.Annotations[AnnotationAfter]; ok {
		errs = append(errs, validateAfter(p, v, ann.Key(AnnotationAfter))...)
	}
	return append(errs, validateDurationAnnotation(p, AnnotationAfterTimeout)...)
}

func validateRestartOnChange(p *corev1.Pod, v string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if p.Spec.RestartPolicy != "" && p.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.Invalid(path, v, "needs restartPolicy Always (the containers are stopped and started again)"))
	}
	mounted := mountedHostPaths(&p.Spec)
	if strings.TrimSpace(v) == RestartOnChangeAll {
		if len(mounted) == 0 {
			errs = append(errs, field.Invalid(path, v, "the pod mounts no hostPath volume"))
		}
		return errs
	}
	list := splitList(v)
	if len(list) == 0 {
		errs = append(errs, field.Invalid(path, v, `must be "all" or a comma-separated list of absolute paths`))
	}
	for _, f := range list {
		switch {
		case !filepath.IsAbs(f):
			errs = append(errs, field.Invalid(path, f, "must be an absolute path on the node"))
		case !slices.ContainsFunc(mounted, func(m string) bool { return within(filepath.Clean(f), m) }):
			errs = append(errs, field.Invalid(path, f, "is not inside a hostPath volume the pod mounts"))
		}
	}
	return errs
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

func validateAfter(p *corev1.Pod, v string, path *field.Path) field.ErrorList {
	names := splitList(v)
	if len(names) == 0 {
		return field.ErrorList{field.Invalid(path, v, "must be a comma-separated list of static pod names")}
	}
	var errs field.ErrorList
	for _, n := range names {
		for _, msg := range validation.IsDNS1123Subdomain(n) {
			errs = append(errs, field.Invalid(path, n, msg))
		}
		if n == OwnName(p) {
			errs = append(errs, field.Invalid(path, n, "a pod cannot start after itself"))
		}
	}
	return errs
}
