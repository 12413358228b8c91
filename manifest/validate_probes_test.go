package manifest

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestValidateProbes(t *testing.T) {
	http := func(port intstr.IntOrString) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: port}}
	}
	for _, tc := range []struct {
		name  string
		probe func(c *corev1.Container)
		want  string // "" when accepted
	}{
		{"port by name", func(c *corev1.Container) {
			c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
			c.LivenessProbe = &corev1.Probe{ProbeHandler: http(intstr.FromString("http")), SuccessThreshold: 1}
		}, ""},
		{"every kind", func(c *corev1.Container) {
			c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090}},
				TerminationGracePeriodSeconds: ptr.To[int64](10)}
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(80)}},
				SuccessThreshold: 3}
			c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/check"}}}}
		}, ""},
		{"https with headers", func(c *corev1.Container) {
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Port: intstr.FromInt(443), Scheme: corev1.URISchemeHTTPS, HTTPHeaders: []corev1.HTTPHeader{{Name: "X-A", Value: "b"}}}}}
		}, ""},
		{"bad scheme", func(c *corev1.Container) {
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt(80), Scheme: "FTP"}}}
		}, `spec.containers[0].readinessProbe.httpGet.scheme: Unsupported value: "FTP"`},
		{"bad header name", func(c *corev1.Container) {
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Port: intstr.FromInt(80), HTTPHeaders: []corev1.HTTPHeader{{Name: "a b"}}}}}
		}, `spec.containers[0].readinessProbe.httpGet.httpHeaders[0].name: Invalid value: "a b"`},
		{"port out of range", func(c *corev1.Container) {
			c.LivenessProbe = &corev1.Probe{ProbeHandler: http(intstr.FromInt(70000))}
		}, "spec.containers[0].livenessProbe.httpGet.port: Invalid value: 70000"},
		{"grpc port missing", func(c *corev1.Container) {
			c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{}}}
		}, "spec.containers[0].livenessProbe.grpc.port: Invalid value: 0"},
		{"exec without command", func(c *corev1.Container) {
			c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{}}}
		}, "spec.containers[0].startupProbe.exec.command: Required value"},
		{"startup success threshold", func(c *corev1.Container) {
			c.StartupProbe = &corev1.Probe{ProbeHandler: http(intstr.FromInt(80)), SuccessThreshold: 2}
		}, "spec.containers[0].startupProbe.successThreshold: Invalid value: 2: must be 1 for startupProbes"},
		{"zero grace", func(c *corev1.Container) {
			c.LivenessProbe = &corev1.Probe{ProbeHandler: http(intstr.FromInt(80)), TerminationGracePeriodSeconds: ptr.To[int64](0)}
		}, "spec.containers[0].livenessProbe.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := basePod()
			tc.probe(&p.Spec.Containers[0])
			sp, err := NewStaticPod(p, Identity{NodeName: "n1", Source: SourceFile, Origin: "/m/web.yaml"})
			if err != nil {
				t.Fatal(err)
			}
			errs := Validate(sp)
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("refused: %v", errs)
			case tc.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want)):
				t.Errorf("errors %v, want one with %q", errs, tc.want)
			}
		})
	}
}
