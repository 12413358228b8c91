package manifest

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// basePod is a valid pod for the rules to change.
func basePod() *corev1.Pod {
	p := &corev1.Pod{}
	p.Name = "web"
	p.Spec.Containers = []corev1.Container{{
		Name:         "web",
		Image:        "nginx:1.27",
		VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}},
	}}
	p.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	return p
}

func TestValidateUnsupportedFields(t *testing.T) {
	c0 := func(p *corev1.Pod) *corev1.Container { return &p.Spec.Containers[0] }
	env := func(src *corev1.EnvVarSource) func(p *corev1.Pod) {
		return func(p *corev1.Pod) { c0(p).Env = []corev1.EnvVar{{Name: "X", ValueFrom: src}} }
	}
	resources := func(limits, requests corev1.ResourceList) func(p *corev1.Pod) {
		return func(p *corev1.Pod) { c0(p).Resources = corev1.ResourceRequirements{Limits: limits, Requests: requests} }
	}
	one := resource.MustParse("1")
	for _, tc := range []struct {
		name   string
		change func(p *corev1.Pod)
		// want is the one expected error, "" when the pod is accepted.
		want string
	}{
		// Refused: the runtime does not implement them.
		{"postStart hook", func(p *corev1.Pod) {
			c0(p).Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		}, "spec.containers[0].lifecycle.postStart: Forbidden: mirrorlet does not run lifecycle hooks"},
		{"preStop hook", func(p *corev1.Pod) {
			c0(p).Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}}
		}, "spec.containers[0].lifecycle.preStop: Forbidden: mirrorlet does not run lifecycle hooks"},
		{"stop signal", func(p *corev1.Pod) {
			c0(p).Lifecycle = &corev1.Lifecycle{StopSignal: ptr.To(corev1.SIGINT)}
		}, "spec.containers[0].lifecycle.stopSignal: Forbidden: mirrorlet does not support stopSignal"},
		{"sidecar init container", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "side", Image: "busybox:1", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}}
		}, "spec.initContainers[0].restartPolicy: Forbidden: mirrorlet does not run sidecar"},
		{"app container restartPolicy", func(p *corev1.Pod) {
			c0(p).RestartPolicy = ptr.To(corev1.ContainerRestartPolicyNever)
		}, "spec.containers[0].restartPolicy: Forbidden: mirrorlet does not support per-container restart policies"},
		{"restart rules", func(p *corev1.Pod) {
			c0(p).RestartPolicyRules = []corev1.ContainerRestartRule{{Action: corev1.ContainerRestartRuleActionRestart}}
		}, "spec.containers[0].restartPolicyRules: Forbidden"},
		{"emptyDir in memory", func(p *corev1.Pod) { p.Spec.Volumes[0].EmptyDir.Medium = corev1.StorageMediumMemory },
			`spec.volumes[0].emptyDir.medium: Forbidden: mirrorlet does not support emptyDir medium "Memory"`},
		{"emptyDir size limit", func(p *corev1.Pod) { p.Spec.Volumes[0].EmptyDir.SizeLimit = &one },
			"spec.volumes[0].emptyDir.sizeLimit: Forbidden: mirrorlet does not enforce emptyDir size limits"},
		{"emptyDir mode", func(p *corev1.Pod) { p.Spec.Volumes[0].EmptyDir.Mode = ptr.To[int32](0o700) },
			"spec.volumes[0].emptyDir.mode: Forbidden"},
		{"subPathExpr", func(p *corev1.Pod) { c0(p).VolumeMounts[0].SubPathExpr = "$(POD)" },
			"spec.containers[0].volumeMounts[0].subPathExpr: Forbidden: mirrorlet does not expand subPathExpr"},
		{"recursive read-only", func(p *corev1.Pod) {
			c0(p).VolumeMounts[0].ReadOnly = true
			c0(p).VolumeMounts[0].RecursiveReadOnly = ptr.To(corev1.RecursiveReadOnlyEnabled)
		}, `spec.containers[0].volumeMounts[0].recursiveReadOnly: Unsupported value: "Enabled": mirrorlet does not make mounts recursively read-only`},
		{"bind mount options", func(p *corev1.Pod) { c0(p).VolumeMounts[0].BindMountOptions = []string{"noexec"} },
			"spec.containers[0].volumeMounts[0].bindMountOptions: Forbidden"},
		{"volume devices", func(p *corev1.Pod) {
			c0(p).VolumeDevices = []corev1.VolumeDevice{{Name: "scratch", DevicePath: "/dev/xvda"}}
		}, "spec.containers[0].volumeDevices: Forbidden: mirrorlet does not attach raw block devices"},
		{"runtime class", func(p *corev1.Pod) { p.Spec.RuntimeClassName = ptr.To("gvisor") },
			"spec.runtimeClassName: Forbidden: mirrorlet does not support runtime classes"},
		{"image pull secrets", func(p *corev1.Pod) { p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "reg"}} },
			"spec.imagePullSecrets: Forbidden: static pods may not reference Secrets"},
		{"pod windowsOptions", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{WindowsOptions: &corev1.WindowsSecurityContextOptions{}}
		}, "spec.securityContext.windowsOptions: Forbidden: mirrorlet runs Linux containers only"},
		{"container windowsOptions", func(p *corev1.Pod) {
			c0(p).SecurityContext = &corev1.SecurityContext{WindowsOptions: &corev1.WindowsSecurityContextOptions{}}
		}, "spec.containers[0].securityContext.windowsOptions: Forbidden"},
		{"windows", func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} },
			`spec.os.name: Unsupported value: "windows": mirrorlet runs Linux containers only; supported values: "linux"`},
		{"user namespace", func(p *corev1.Pod) { p.Spec.HostUsers = ptr.To(false) },
			"spec.hostUsers: Forbidden: mirrorlet does not support user namespaces"},
		{"strict supplemental groups", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{SupplementalGroupsPolicy: ptr.To(corev1.SupplementalGroupsPolicyStrict)}
		}, `spec.securityContext.supplementalGroupsPolicy: Unsupported value: "Strict"`},
		{"pod-level resources", func(p *corev1.Pod) {
			p.Spec.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: one}}
		}, "spec.resources: Forbidden: mirrorlet does not support pod-level resources"},
		{"resource claims", func(p *corev1.Pod) { c0(p).Resources.Claims = []corev1.ResourceClaim{{Name: "gpu"}} },
			"spec.containers[0].resources.claims: Forbidden: static pods may not use ResourceClaims"},
		{"hugepages limit, defaulted into requests", resources(corev1.ResourceList{"hugepages-2Mi": one}, nil),
			`spec.containers[0].resources.limits[hugepages-2Mi]: Unsupported value: "hugepages-2Mi": mirrorlet applies only cpu and memory`},
		{"extended resource request", resources(nil, corev1.ResourceList{"example.com/gpu": one}),
			`spec.containers[0].resources.requests[example.com/gpu]: Unsupported value: "example.com/gpu"`},
		{"ephemeral-storage limit", resources(corev1.ResourceList{corev1.ResourceEphemeralStorage: one}, nil),
			"spec.containers[0].resources.limits[ephemeral-storage]: Unsupported value"},
		{"hostname as FQDN", func(p *corev1.Pod) { p.Spec.SetHostnameAsFQDN = ptr.To(true) },
			"spec.setHostnameAsFQDN: Forbidden"},
		{"hostname override", func(p *corev1.Pod) { p.Spec.HostnameOverride = ptr.To("other") },
			"spec.hostnameOverride: Forbidden: mirrorlet does not support hostnameOverride; use spec.hostname"},
		{"active deadline", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](60) },
			"spec.activeDeadlineSeconds: Forbidden: mirrorlet does not enforce activeDeadlineSeconds"},
		{"dnsConfig merged into ClusterFirst", func(p *corev1.Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Searches: []string{"example.com"}}
		}, "spec.dnsConfig: Forbidden: mirrorlet applies dnsConfig only with dnsPolicy None"},
		{"env from file", env(&corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{VolumeName: "scratch", Path: "env", Key: "X"}}),
			"spec.containers[0].env[0].valueFrom.fileKeyRef: Forbidden: mirrorlet does not read environment variables from files"},
		{"env fieldRef all labels", env(&corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}),
			`spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "metadata.labels": mirrorlet does not fill this field`},
		{"env fieldRef generation", env(&corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.generation"}}),
			`fieldRef.fieldPath: Unsupported value: "metadata.generation"`},
		{"env resourceFieldRef hugepages", env(&corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.hugepages-2Mi"}}),
			`spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.hugepages-2Mi": mirrorlet cannot compute this resource`},
		{"env resourceFieldRef ephemeral-storage limit", env(&corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.ephemeral-storage"}}),
			`resourceFieldRef.resource: Unsupported value: "limits.ephemeral-storage"`},

		// Accepted: the runtime honours them, or only the scheduler or the
		// API server reads them.
		{"plain pod", func(*corev1.Pod) {}, ""},
		{"probes", func(p *corev1.Pod) {
			probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt(8080)}}}
			c0(p).LivenessProbe, c0(p).ReadinessProbe, c0(p).StartupProbe = probe, probe, probe
		}, ""},
		{"empty lifecycle", func(p *corev1.Pod) { c0(p).Lifecycle = &corev1.Lifecycle{} }, ""},
		{"termination message and dns policy", func(p *corev1.Pod) {
			c0(p).TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
			p.Spec.DNSPolicy, p.Spec.EnableServiceLinks = corev1.DNSClusterFirstWithHostNet, ptr.To(false)
		}, ""},
		{"dnsConfig with dnsPolicy None", func(p *corev1.Pod) {
			p.Spec.DNSPolicy = corev1.DNSNone
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"10.0.0.53"}}
		}, ""},
		{"scheduler fields", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"a": "b"}
			p.Spec.Affinity = &corev1.Affinity{}
			p.Spec.SchedulerName, p.Spec.PriorityClassName, p.Spec.Priority = "other", "system-node-critical", ptr.To[int32](1)
			p.Spec.PreemptionPolicy = ptr.To(corev1.PreemptNever)
			p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: one}
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone"}}
			p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/ready"}}
		}, ""},
		{"host aliases", func(p *corev1.Pod) {
			p.Spec.HostAliases = []corev1.HostAlias{{IP: "127.0.0.1", Hostnames: []string{"kubernetes"}}}
		}, ""},
		{"stdin, tty and resize policy", func(p *corev1.Pod) {
			c0(p).Stdin, c0(p).StdinOnce, c0(p).TTY = true, true, true
			c0(p).ResizePolicy = []corev1.ContainerResizePolicy{{ResourceName: corev1.ResourceCPU, RestartPolicy: corev1.NotRequired}}
		}, ""},
		{"linux, host users, merged groups", func(p *corev1.Pod) {
			p.Spec.OS = &corev1.PodOS{Name: corev1.Linux}
			p.Spec.HostUsers = ptr.To(true)
			p.Spec.SetHostnameAsFQDN = ptr.To(false)
			p.Spec.SecurityContext = &corev1.PodSecurityContext{SupplementalGroupsPolicy: ptr.To(corev1.SupplementalGroupsPolicyMerge)}
		}, ""},
		{"read-only mount if possible", func(p *corev1.Pod) {
			c0(p).VolumeMounts[0].ReadOnly = true
			c0(p).VolumeMounts[0].RecursiveReadOnly = ptr.To(corev1.RecursiveReadOnlyIfPossible)
		}, ""},
		{"cpu, memory and ephemeral-storage request", resources(
			corev1.ResourceList{corev1.ResourceCPU: one, corev1.ResourceMemory: one},
			corev1.ResourceList{corev1.ResourceEphemeralStorage: one}), ""},
		{"downward API the runtime fills", func(p *corev1.Pod) {
			for _, path := range []string{"metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels['app']",
				"metadata.annotations['a.b/c']", "spec.nodeName", "spec.serviceAccountName",
				"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"} {
				c0(p).Env = append(c0(p).Env, corev1.EnvVar{Name: "F", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}})
			}
			for _, res := range SupportedResourceFields {
				c0(p).Env = append(c0(p).Env, corev1.EnvVar{Name: "R", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: res}}})
			}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := basePod()
			tc.change(p)
			sp, err := NewStaticPod(p, Identity{NodeName: "n1", Source: SourceFile, Origin: "/m/web.yaml"})
			if err != nil {
				t.Fatal(err)
			}
			errs := Validate(sp)
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Fatalf("refused: %v", errs)
			case tc.want == "":
			case len(errs) != 1:
				t.Fatalf("errors %v, want one containing %q", errs, tc.want)
			case !strings.Contains(errs[0].Error(), tc.want):
				t.Errorf("error %q, want one containing %q", errs[0], tc.want)
			}
		})
	}
}
