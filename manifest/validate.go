package manifest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate checks a StaticPod for what would stop it from running or from
// being mirrored, and for fields mirrorlet cannot honour (see
// validate_unsupported.go), and returns every problem with its field path.
func Validate(sp *StaticPod) field.ErrorList {
	p := sp.Pod
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	for _, msg := range validation.IsDNS1123Subdomain(p.Name) {
		errs = append(errs, field.Invalid(meta.Child("name"), p.Name,
			fmt.Sprintf("the mirror name <name>-<node> %s", msg)))
	}
	for _, msg := range validation.IsDNS1123Label(p.Namespace) {
		errs = append(errs, field.Invalid(meta.Child("namespace"), p.Namespace, msg))
	}
	spec := field.NewPath("spec")
	if len(p.Spec.Containers) == 0 {
		errs = append(errs, field.Required(spec.Child("containers"), "a pod needs at least one container"))
	}
	names := sets.New[string]()
	errs = append(errs, validateContainers(p.Spec.InitContainers, spec.Child("initContainers"), names)...)
	errs = append(errs, validateContainers(p.Spec.Containers, spec.Child("containers"), names)...)
	errs = append(errs, validateStaticRules(&p.Spec, spec)...)
	errs = append(errs, validateProbes(&p.Spec, spec)...)
	errs = append(errs, validateUnsupported(&p.Spec, spec)...)
	errs = append(errs, validateDurationAnnotation(p, AnnotationRollbackAfter)...)
	errs = append(errs, validateOrderAnnotations(p)...)
	return errs
}

// validateStaticRules checks what the API server refuses in mirror pods:
// references to API objects a node cannot read on its own.
func validateStaticRules(s *corev1.PodSpec, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.ServiceAccountName != "" && s.ServiceAccountName != "default" {
		errs = append(errs, field.Forbidden(spec.Child("serviceAccountName"), "static pods may not use a service account"))
	}
	if len(s.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(spec.Child("ephemeralContainers"), "static pods may not have ephemeral containers"))
	}
	if len(s.ResourceClaims) > 0 {
		errs = append(errs, field.Forbidden(spec.Child("resourceClaims"), "static pods may not reference ResourceClaims"))
	}
	for i, v := range s.Volumes {
		vp := spec.Child("volumes").Index(i)
		switch name := forbiddenVolume(&v.VolumeSource); {
		case name != "":
			errs = append(errs, field.Forbidden(vp.Child(name), "static pods may not reference "+volumeNoun[name]))
		case v.HostPath == nil && v.EmptyDir == nil:
			errs = append(errs, field.NotSupported(vp, volumeKind(&v.VolumeSource), []string{"hostPath", "emptyDir"}))
		}
	}
	eachContainer(s, spec, func(c *corev1.Container, path *field.Path, _ bool) {
		errs = append(errs, validateEnv(c, path)...)
		errs = append(errs, validateEnvFrom(c, path)...)
	})
	return errs
}

var volumeNoun = map[string]string{
	"secret": "Secrets", "configMap": "ConfigMaps", "persistentVolumeClaim": "PersistentVolumeClaims",
	"projected": "projected volumes (service account tokens, Secrets, ConfigMaps)", "csi": "CSI volumes",
	"ephemeral": "ephemeral volumes",
}

// forbiddenVolume returns the field name of a volume source static pods may
// not use, or "".
func forbiddenVolume(v *corev1.VolumeSource) string {
	switch {
	case v.Secret != nil:
		return "secret"
	case v.ConfigMap != nil:
		return "configMap"
	case v.PersistentVolumeClaim != nil:
		return "persistentVolumeClaim"
	case v.Projected != nil:
		return "projected"
	case v.CSI != nil:
		return "csi"
	case v.Ephemeral != nil:
		return "ephemeral"
	}
	return ""
}

// volumeKind names the source of a volume as its JSON field.
func volumeKind(v *corev1.VolumeSource) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "unknown"
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return "unknown"
	}
	for k := range m {
		return k
	}
	return "none"
}

// validateEnv refuses env sources a node cannot read on its own and
// downward API references the runtime cannot fill.
func validateEnv(c *corev1.Container, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range c.Env {
		if e.ValueFrom == nil {
			continue
		}
		vf := path.Child("env").Index(i).Child("valueFrom")
		switch src := e.ValueFrom; {
		case src.SecretKeyRef != nil:
			errs = append(errs, field.Forbidden(vf.Child("secretKeyRef"), "static pods may not reference Secrets"))
		case src.ConfigMapKeyRef != nil:
			errs = append(errs, field.Forbidden(vf.Child("configMapKeyRef"), "static pods may not reference ConfigMaps"))
		case src.FileKeyRef != nil:
			errs = append(errs, field.Forbidden(vf.Child("fileKeyRef"),
				"mirrorlet does not read environment variables from files; set value, or read the file in the container's command"))
		case src.FieldRef != nil:
			errs = append(errs, validateEnvFieldRef(src.FieldRef, vf.Child("fieldRef"))...)
		case src.ResourceFieldRef != nil:
			errs = append(errs, validateEnvResourceFieldRef(src.ResourceFieldRef, vf.Child("resourceFieldRef"))...)
		}
	}
	return errs
}

func validateEnvFrom(c *corev1.Container, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range c.EnvFrom {
		ef := path.Child("envFrom").Index(i)
		switch {
		case e.SecretRef != nil:
			errs = append(errs, field.Forbidden(ef.Child("secretRef"), "static pods may not reference Secrets"))
		case e.ConfigMapRef != nil:
			errs = append(errs, field.Forbidden(ef.Child("configMapRef"), "static pods may not reference ConfigMaps"))
		}
	}
	return errs
}

func validateContainers(cs []corev1.Container, path *field.Path, names sets.Set[string]) field.ErrorList {
	var errs field.ErrorList
	for i := range cs {
		c := &cs[i]
		idx := path.Index(i)
		switch {
		case c.Name == "":
			errs = append(errs, field.Required(idx.Child("name"), ""))
		case names.Has(c.Name):
			errs = append(errs, field.Duplicate(idx.Child("name"), c.Name))
		default:
			for _, msg := range validation.IsDNS1123Label(c.Name) {
				errs = append(errs, field.Invalid(idx.Child("name"), c.Name, msg))
			}
		}
		names.Insert(c.Name)
		if c.Image == "" {
			errs = append(errs, field.Required(idx.Child("image"), ""))
		}
		for j := range c.VolumeMounts {
			sub := c.VolumeMounts[j].SubPath
			if msg := checkSubPath(sub); msg != "" {
				errs = append(errs, field.Invalid(idx.Child("volumeMounts").Index(j).Child("subPath"), sub, msg))
			}
		}
		for j, port := range c.Ports {
			pp := idx.Child("ports").Index(j)
			for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
			}
			if port.HostPort != 0 {
				for _, msg := range validation.IsValidPortNum(int(port.HostPort)) {
					errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, msg))
				}
			}
		}
	}
	return errs
}

// checkSubPath returns why a volumeMount's subPath is refused, or "": it must
// be a relative path that stays inside the volume (no ".." element), as the
// API server demands. The runtime also refuses symlinks that lead out of the
// volume when it mounts it.
func checkSubPath(sub string) string {
	switch {
	case sub == "":
		return ""
	case filepath.IsAbs(sub):
		return "must be a relative path inside the volume"
	case slices.Contains(strings.Split(filepath.ToSlash(sub), "/"), ".."):
		return "must not contain '..': a subPath cannot leave its volume"
	}
	return ""
}
