package manifest

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateProbes checks the probes of every container as the API server
// does, and that a port named by a probe is a port of its container (the
// kubelet finds out only when it probes). Init containers may have none.
func validateProbes(s *corev1.PodSpec, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	eachContainer(s, spec, func(c *corev1.Container, path *field.Path, init bool) {
		probes := []struct {
			name  string
			probe *corev1.Probe
		}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}}
		for _, p := range probes {
			switch pp := path.Child(p.name); {
			case p.probe == nil:
			case init:
				errs = append(errs, field.Forbidden(pp, "init containers may not have probes"))
			default:
				errs = append(errs, validateProbe(p.probe, c, p.name, pp)...)
			}
		}
	})
	return errs
}

func validateProbe(p *corev1.Probe, c *corev1.Container, kind string, path *field.Path) field.ErrorList {
	errs := validateProbeHandler(&p.ProbeHandler, c, path)
	for _, f := range []struct {
		name  string
		value int32
	}{{"initialDelaySeconds", p.InitialDelaySeconds}, {"timeoutSeconds", p.TimeoutSeconds}, {"periodSeconds", p.PeriodSeconds},
		{"successThreshold", p.SuccessThreshold}, {"failureThreshold", p.FailureThreshold}} {
		if f.value < 0 {
			errs = append(errs, field.Invalid(path.Child(f.name), f.value, "must be greater than or equal to 0 (0 means the default)"))
		}
	}
	if kind != "readinessProbe" && p.SuccessThreshold > 1 {
		errs = append(errs, field.Invalid(path.Child("successThreshold"), p.SuccessThreshold, "must be 1 for "+kind+"s"))
	}
	if g := p.TerminationGracePeriodSeconds; g != nil {
		switch {
		case kind == "readinessProbe":
			errs = append(errs, field.Invalid(path.Child("terminationGracePeriodSeconds"), *g, "must not be set for readinessProbes"))
		case *g <= 0:
			errs = append(errs, field.Invalid(path.Child("terminationGracePeriodSeconds"), *g, "must be greater than 0"))
		}
	}
	return errs
}

// validateProbeHandler checks that a probe has exactly one handler and that
// the handler is sound.
func validateProbeHandler(h *corev1.ProbeHandler, c *corev1.Container, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	var set []string
	if h.Exec != nil {
		set = append(set, "exec")
		if len(h.Exec.Command) == 0 {
			errs = append(errs, field.Required(path.Child("exec", "command"), ""))
		}
	}
	if h.HTTPGet != nil {
		set = append(set, "httpGet")
		errs = append(errs, validateHTTPGet(h.HTTPGet, c, path.Child("httpGet"))...)
	}
	if h.TCPSocket != nil {
		set = append(set, "tcpSocket")
		errs = append(errs, validateProbePort(h.TCPSocket.Port, c, path.Child("tcpSocket", "port"))...)
	}
	if h.GRPC != nil {
		set = append(set, "grpc")
		for _, msg := range validation.IsValidPortNum(int(h.GRPC.Port)) {
			errs = append(errs, field.Invalid(path.Child("grpc", "port"), h.GRPC.Port, msg))
		}
	}
	switch {
	case len(set) == 0:
		errs = append(errs, field.Required(path, "must specify a handler type (exec, httpGet, tcpSocket or grpc)"))
	case len(set) > 1:
		errs = append(errs, field.Forbidden(path.Child(set[1]), "may not specify more than 1 handler type; this probe has "+joinNames(set)))
	}
	return errs
}

func validateHTTPGet(h *corev1.HTTPGetAction, c *corev1.Container, path *field.Path) field.ErrorList {
	errs := validateProbePort(h.Port, c, path.Child("port"))
	schemes := []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTPS}
	if h.Scheme != "" && !slices.Contains(schemes, h.Scheme) {
		errs = append(errs, field.NotSupported(path.Child("scheme"), h.Scheme, schemes))
	}
	for i, hd := range h.HTTPHeaders {
		for _, msg := range validation.IsHTTPHeaderName(hd.Name) {
			errs = append(errs, field.Invalid(path.Child("httpHeaders").Index(i).Child("name"), hd.Name, msg))
		}
	}
	return errs
}

// validateProbePort checks a port by number, or by the name of one of the
// container's ports.
func validateProbePort(port intstr.IntOrString, c *corev1.Container, path *field.Path) field.ErrorList {
	if port.Type == intstr.Int {
		var errs field.ErrorList
		for _, msg := range validation.IsValidPortNum(port.IntValue()) {
			errs = append(errs, field.Invalid(path, port.IntVal, msg))
		}
		return errs
	}
	if slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == port.StrVal }) {
		return nil
	}
	return field.ErrorList{field.Invalid(path, port.StrVal, "the container has no port of this name (ports[].name)")}
}

func joinNames(names []string) string {
	out := names[0]
	for _, n := range names[1:] {
		out += " and " + n
	}
	return out
}
