package cri

import (
	"fmt"
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerEnv resolves c's environment the way the kubelet does: entries
// in order, each value expanded with the entries before it, downward API
// fields read from the pod and the node. It also returns the variables for
// expanding command and args.
func (r *Runtime) containerEnv(pod *corev1.Pod, c *corev1.Container, podIP string) ([]*runtimeapi.KeyValue, map[string]string, error) {
	vars := map[string]string{}
	var out []*runtimeapi.KeyValue
	for i, e := range c.Env {
		value := expand(e.Value, vars)
		if e.ValueFrom != nil {
			v, err := r.envSource(pod, c, e.ValueFrom, podIP)
			if err != nil {
				return nil, nil, fmt.Errorf("container %s env[%d] %s: %w", c.Name, i, e.Name, err)
			}
			value = v
		}
		vars[e.Name] = value
	}
	// Keep the order of first definition, the last value of a name wins.
	seen := map[string]bool{}
	for _, e := range c.Env {
		if seen[e.Name] {
			continue
		}
		seen[e.Name] = true
		out = append(out, &runtimeapi.KeyValue{Key: e.Name, Value: []byte(vars[e.Name])})
	}
	return out, vars, nil
}

func (r *Runtime) envSource(pod *corev1.Pod, c *corev1.Container, src *corev1.EnvVarSource, podIP string) (string, error) {
	switch {
	case src.FieldRef != nil:
		return r.fieldRef(pod, src.FieldRef.FieldPath, podIP)
	case src.ResourceFieldRef != nil:
		return resourceField(pod, c, src.ResourceFieldRef)
	default:
		return "", fmt.Errorf("only fieldRef and resourceFieldRef are supported in static pods")
	}
}

func (r *Runtime) fieldRef(pod *corev1.Pod, path, podIP string) (string, error) {
	if k, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	node := pod.Spec.NodeName
	if node == "" {
		node = r.opts.NodeName
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return node, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return r.opts.NodeIP, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	default:
		return "", fmt.Errorf("fieldRef %q is not supported", path)
	}
}

// subscript parses `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

// resourceField returns a container's request or limit in divisor units,
// rounded up; an unset limit is the node's capacity, as in the kubelet.
func resourceField(pod *corev1.Pod, c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	target := c
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		target = nil
		for _, cc := range allContainers(&pod.Spec) {
			if cc.Name == ref.ContainerName {
				target = &cc
				break
			}
		}
		if target == nil {
			return "", fmt.Errorf("resourceFieldRef: no container %q", ref.ContainerName)
		}
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("resourceFieldRef: unsupported resource %q", ref.Resource)
	}
	var q resource.Quantity
	var set bool
	switch kind {
	case "limits":
		q, set = target.Resources.Limits[corev1.ResourceName(name)]
	case "requests":
		q, set = target.Resources.Requests[corev1.ResourceName(name)]
	default:
		return "", fmt.Errorf("resourceFieldRef: unsupported resource %q", ref.Resource)
	}
	if !set && kind == "limits" {
		q, set = nodeCapacity(corev1.ResourceName(name))
	}
	if !set {
		q = resource.Quantity{}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if corev1.ResourceName(name) == corev1.ResourceCPU {
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))), nil
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(divisor.Value())))), nil
}

// expandAll expands $(VAR) references in every string.
func expandAll(in []string, vars map[string]string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, vars)
	}
	return out
}

// expand replaces $(VAR) with vars[VAR] where VAR is defined, leaves
// undefined references as they are and turns $$ into $, as the kubelet does.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
