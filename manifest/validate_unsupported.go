package manifest

import (
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// This file refuses the Pod fields that mirrorlet's runtime (runtime/cri)
// does not implement, so that a manifest never runs a pod that differs from
// what its author wrote. Fields that only the scheduler or the API server
// read (nodeSelector, affinity, tolerations, priority, ...) are accepted: the
// node is fixed and the mirror carries them. When the runtime learns a
// field, drop its rule here and its case in test/testdata/bad.

// validateUnsupported returns an error for every field of s that mirrorlet
// cannot honour.
func validateUnsupported(s *corev1.PodSpec, spec *field.Path) field.ErrorList {
	errs := validateUnsupportedPod(s, spec)
	errs = append(errs, validateUnsupportedHostname(s, spec)...)
	errs = append(errs, validateUnsupportedPodSecurity(s.SecurityContext, spec.Child("securityContext"))...)
	for i := range s.Volumes {
		if ed := s.Volumes[i].EmptyDir; ed != nil {
			errs = append(errs, validateUnsupportedEmptyDir(ed, spec.Child("volumes").Index(i).Child("emptyDir"))...)
		}
	}
	eachContainer(s, spec, func(c *corev1.Container, path *field.Path, init bool) {
		errs = append(errs, validateUnsupportedContainer(c, path, init)...)
	})
	return errs
}

// eachContainer calls fn for every init and app container with its path.
func eachContainer(s *corev1.PodSpec, spec *field.Path, fn func(c *corev1.Container, path *field.Path, init bool)) {
	for i := range s.InitContainers {
		fn(&s.InitContainers[i], spec.Child("initContainers").Index(i), true)
	}
	for i := range s.Containers {
		fn(&s.Containers[i], spec.Child("containers").Index(i), false)
	}
}

// unsupported is a NotSupported error that says why before the values
// mirrorlet supports.
func unsupported[T ~string](path *field.Path, value any, supported []T, why string) *field.Error {
	e := field.NotSupported(path, value, supported)
	e.Detail = why + "; " + e.Detail
	return e
}

func validateUnsupportedPod(s *corev1.PodSpec, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.RuntimeClassName != nil {
		errs = append(errs, field.Forbidden(spec.Child("runtimeClassName"),
			"mirrorlet does not support runtime classes (a RuntimeClass is an API object); every pod runs with the default runtime handler of mirrorlet's containerd"))
	}
	if len(s.ImagePullSecrets) > 0 {
		errs = append(errs, field.Forbidden(spec.Child("imagePullSecrets"),
			"static pods may not reference Secrets; configure registry credentials in mirrorlet's containerd instead"))
	}
	if s.OS != nil && s.OS.Name != corev1.Linux {
		errs = append(errs, unsupported(spec.Child("os", "name"), string(s.OS.Name), []corev1.OSName{corev1.Linux},
			"mirrorlet runs Linux containers only"))
	}
	if s.HostUsers != nil && !*s.HostUsers {
		errs = append(errs, field.Forbidden(spec.Child("hostUsers"),
			"mirrorlet does not support user namespaces; remove hostUsers or set it to true"))
	}
	if s.Resources != nil {
		errs = append(errs, field.Forbidden(spec.Child("resources"),
			"mirrorlet does not support pod-level resources; set resources on each container"))
	}
	if s.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(spec.Child("activeDeadlineSeconds"),
			"mirrorlet does not enforce activeDeadlineSeconds; a static pod runs until its manifest is removed"))
	}
	return errs
}

func validateUnsupportedHostname(s *corev1.PodSpec, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.SetHostnameAsFQDN != nil && *s.SetHostnameAsFQDN {
		errs = append(errs, field.Forbidden(spec.Child("setHostnameAsFQDN"),
			"mirrorlet does not support setHostnameAsFQDN; the hostname is spec.hostname or the pod name"))
	}
	if s.HostnameOverride != nil {
		errs = append(errs, field.Forbidden(spec.Child("hostnameOverride"),
			"mirrorlet does not support hostnameOverride; use spec.hostname"))
	}
	if s.DNSConfig != nil && s.DNSPolicy != corev1.DNSNone {
		errs = append(errs, field.Forbidden(spec.Child("dnsConfig"),
			"mirrorlet applies dnsConfig only with dnsPolicy None; set dnsPolicy: None and list every nameserver, search and option"))
	}
	return errs
}

func validateUnsupportedPodSecurity(sc *corev1.PodSecurityContext, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if sc == nil {
		return nil
	}
	if sc.WindowsOptions != nil {
		errs = append(errs, windowsOptions(path.Child("windowsOptions")))
	}
	if p := sc.SupplementalGroupsPolicy; p != nil && *p != corev1.SupplementalGroupsPolicyMerge {
		errs = append(errs, unsupported(path.Child("supplementalGroupsPolicy"), string(*p),
			[]corev1.SupplementalGroupsPolicy{corev1.SupplementalGroupsPolicyMerge},
			"mirrorlet always merges the image's groups with the pod's"))
	}
	return errs
}

func windowsOptions(path *field.Path) *field.Error {
	return field.Forbidden(path, "mirrorlet runs Linux containers only; remove windowsOptions")
}

func validateUnsupportedEmptyDir(ed *corev1.EmptyDirVolumeSource, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if ed.Medium != corev1.StorageMediumDefault {
		errs = append(errs, field.Forbidden(path.Child("medium"),
			"mirrorlet does not support emptyDir medium "+`"`+string(ed.Medium)+`"`+
				": an emptyDir is a directory on the node's disk; remove medium, or use a hostPath directory on a tmpfs such as /run"))
	}
	if ed.SizeLimit != nil {
		errs = append(errs, field.Forbidden(path.Child("sizeLimit"),
			"mirrorlet does not enforce emptyDir size limits; remove sizeLimit"))
	}
	if ed.Mode != nil {
		errs = append(errs, field.Forbidden(path.Child("mode"),
			"mirrorlet does not support emptyDir mode (an emptyDir is mode 0777, setgid to fsGroup if set); remove mode"))
	}
	return errs
}

func validateUnsupportedContainer(c *corev1.Container, path *field.Path, init bool) field.ErrorList {
	errs := validateUnsupportedLifecycle(c, path, init)
	for j, m := range c.VolumeMounts {
		errs = append(errs, validateUnsupportedMount(&m, path.Child("volumeMounts").Index(j))...)
	}
	if len(c.VolumeDevices) > 0 {
		errs = append(errs, field.Forbidden(path.Child("volumeDevices"),
			"mirrorlet does not attach raw block devices; mount the device with a hostPath volume of type BlockDevice instead"))
	}
	if c.SecurityContext != nil && c.SecurityContext.WindowsOptions != nil {
		errs = append(errs, windowsOptions(path.Child("securityContext", "windowsOptions")))
	}
	errs = append(errs, validateUnsupportedResources(&c.Resources, path.Child("resources"))...)
	return errs
}

func validateUnsupportedLifecycle(c *corev1.Container, path *field.Path, init bool) field.ErrorList {
	var errs field.ErrorList
	if lc := c.Lifecycle; lc != nil {
		lp := path.Child("lifecycle")
		if lc.PostStart != nil {
			errs = append(errs, field.Forbidden(lp.Child("postStart"),
				"mirrorlet does not run lifecycle hooks; run the step in the container's command instead"))
		}
		if lc.PreStop != nil {
			errs = append(errs, field.Forbidden(lp.Child("preStop"),
				"mirrorlet does not run lifecycle hooks; handle the stop signal (SIGTERM) in the container within terminationGracePeriodSeconds instead"))
		}
		if lc.StopSignal != nil {
			errs = append(errs, field.Forbidden(lp.Child("stopSignal"),
				"mirrorlet does not support stopSignal; the image's STOPSIGNAL (default SIGTERM) stops the container"))
		}
	}
	switch {
	case c.RestartPolicy != nil && init:
		errs = append(errs, field.Forbidden(path.Child("restartPolicy"),
			"mirrorlet does not run sidecar (restartable init) containers; make it a regular container in spec.containers"))
	case c.RestartPolicy != nil:
		errs = append(errs, field.Forbidden(path.Child("restartPolicy"),
			"mirrorlet does not support per-container restart policies; use spec.restartPolicy"))
	}
	if len(c.RestartPolicyRules) > 0 {
		errs = append(errs, field.Forbidden(path.Child("restartPolicyRules"),
			"mirrorlet does not support container restart rules; use spec.restartPolicy"))
	}
	return errs
}

func validateUnsupportedMount(m *corev1.VolumeMount, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.SubPathExpr != "" {
		errs = append(errs, field.Forbidden(path.Child("subPathExpr"),
			"mirrorlet does not expand subPathExpr; use subPath with a literal path"))
	}
	if r := m.RecursiveReadOnly; r != nil && *r == corev1.RecursiveReadOnlyEnabled {
		errs = append(errs, unsupported(path.Child("recursiveReadOnly"), string(*r),
			[]corev1.RecursiveReadOnlyMode{corev1.RecursiveReadOnlyDisabled, corev1.RecursiveReadOnlyIfPossible},
			"mirrorlet does not make mounts recursively read-only (with IfPossible, only the mount itself is read-only)"))
	}
	if len(m.BindMountOptions) > 0 {
		errs = append(errs, field.Forbidden(path.Child("bindMountOptions"),
			"mirrorlet does not apply bind mount options; remove bindMountOptions"))
	}
	return errs
}

// Resources the runtime applies (cpu, memory) or that only rank pods for
// scheduling (ephemeral-storage requests).
var (
	supportedLimits   = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}
	supportedRequests = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}
)

const resourcesWhy = "mirrorlet applies only cpu and memory (no device plugins, hugepages or local storage limits)"

func validateUnsupportedResources(r *corev1.ResourceRequirements, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(r.Claims) > 0 {
		errs = append(errs, field.Forbidden(path.Child("claims"), "static pods may not use ResourceClaims"))
	}
	for _, name := range slices.Sorted(maps.Keys(r.Limits)) {
		if !slices.Contains(supportedLimits, name) {
			errs = append(errs, unsupported(path.Child("limits").Key(string(name)), string(name), supportedLimits, resourcesWhy))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Requests)) {
		_, limited := r.Limits[name] // a limit is also a request: report it once
		if !limited && !slices.Contains(supportedRequests, name) {
			errs = append(errs, unsupported(path.Child("requests").Key(string(name)), string(name), supportedRequests, resourcesWhy))
		}
	}
	return errs
}

// SupportedFieldPaths are the downward API fields runtime/cri fills in
// environment variables (fieldRef in runtime/cri/env.go; a test there
// checks that it fills every one).
var SupportedFieldPaths = []string{
	"metadata.name", "metadata.namespace", "metadata.uid",
	"metadata.labels['<KEY>']", "metadata.annotations['<KEY>']",
	"spec.nodeName", "spec.serviceAccountName",
	"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
}

func supportedFieldPath(p string) bool {
	for _, prefix := range []string{"metadata.labels['", "metadata.annotations['"} {
		if key, ok := strings.CutPrefix(p, prefix); ok {
			return strings.HasSuffix(key, "']")
		}
	}
	return slices.Contains(SupportedFieldPaths, p)
}

// SupportedResourceFields are the resources runtime/cri computes for a
// resourceFieldRef as the kubelet does (an unset cpu or memory limit is the
// node's capacity; a test in runtime/cri checks every one).
var SupportedResourceFields = []string{
	"limits.cpu", "limits.memory", "requests.cpu", "requests.memory", "requests.ephemeral-storage",
}

func validateEnvFieldRef(ref *corev1.ObjectFieldSelector, path *field.Path) field.ErrorList {
	if supportedFieldPath(ref.FieldPath) {
		return nil
	}
	return field.ErrorList{unsupported(path.Child("fieldPath"), ref.FieldPath, SupportedFieldPaths,
		"mirrorlet does not fill this field in environment variables")}
}

func validateEnvResourceFieldRef(ref *corev1.ResourceFieldSelector, path *field.Path) field.ErrorList {
	if slices.Contains(SupportedResourceFields, ref.Resource) {
		return nil
	}
	return field.ErrorList{unsupported(path.Child("resource"), ref.Resource, SupportedResourceFields,
		"mirrorlet cannot compute this resource")}
}
