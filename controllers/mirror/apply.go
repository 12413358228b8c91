package mirror

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// FieldManager is the field manager mirrorlet writes mirrors as (server-side
// apply, or create when patches are refused). Fields others set on a mirror
// (labels, annotations, tolerations, containers added by admission) belong
// to other managers and are left alone.
const FieldManager = "mirrorlet"

// drift says how a mirror differs from what mirrorlet wants it to be.
type drift int

const (
	// inSync: every field mirrorlet owns has the manifest's value.
	inSync drift = iota
	// metadataDrift: labels, annotations or owners mirrorlet sets differ;
	// an apply puts them back in place.
	metadataDrift
	// specDrift: another hash, being deleted, a spec field mirrorlet sets
	// changed, or a mirror mirrorlet owns no field of; it must be
	// recreated (the pod spec is mostly immutable, and config.mirror is).
	specDrift
)

// applyConfiguration is what mirrorlet applies for want: its name,
// labels, annotations, owners and whole spec, nothing else.
func applyConfiguration(want *corev1.Pod) (*corev1ac.PodApplyConfiguration, error) {
	spec := &corev1ac.PodSpecApplyConfiguration{}
	if err := convert(want.Spec, spec); err != nil {
		return nil, fmt.Errorf("converting the spec of %s/%s: %w", want.Namespace, want.Name, err)
	}
	ac := corev1ac.Pod(want.Name, want.Namespace).
		WithLabels(want.Labels).
		WithAnnotations(want.Annotations).
		WithSpec(spec)
	for _, o := range want.OwnerReferences {
		ref := metav1ac.OwnerReference().WithAPIVersion(o.APIVersion).WithKind(o.Kind).WithName(o.Name).WithUID(o.UID)
		if o.Controller != nil {
			ref.WithController(*o.Controller)
		}
		ac.WithOwnerReferences(ref)
	}
	return ac, nil
}

// ownedConfiguration returns the fields of mirror that mirrorlet owns, and
// false when it owns none (a mirror made by someone else, or by a version
// of mirrorlet that did not name its field manager). A mirror created
// without apply (when patches are refused) is owned through an Update
// entry, read the same way.
func ownedConfiguration(mirror *corev1.Pod) (*corev1ac.PodApplyConfiguration, bool, error) {
	pod := mirror
	var found, applied bool
	for _, mf := range mirror.ManagedFields {
		if mf.Manager == FieldManager && mf.Subresource == "" {
			found, applied = true, applied || mf.Operation == metav1.ManagedFieldsOperationApply
		}
	}
	if !found {
		return nil, false, nil
	}
	if !applied {
		pod = mirror.DeepCopy()
		for i := range pod.ManagedFields {
			if pod.ManagedFields[i].Manager == FieldManager && pod.ManagedFields[i].Subresource == "" {
				pod.ManagedFields[i].Operation = metav1.ManagedFieldsOperationApply
			}
		}
	}
	ac, err := corev1ac.ExtractPod(pod, FieldManager)
	if err != nil {
		return nil, false, fmt.Errorf("extracting mirrorlet's fields of %s/%s: %w", mirror.Namespace, mirror.Name, err)
	}
	return ac, true, nil
}

// applied reports whether mirrorlet owns fields of mirror through apply. A
// mirror it owns only through an Update entry (made by a plain create: by
// mirrorlet when patches are refused, or by a version before apply, whose
// user agent named the same manager) is not changed in place: an apply
// could not remove what the Update entry owns (a label dropped from the
// manifest would stay), so it is recreated instead.
func applied(mirror *corev1.Pod) bool {
	for _, mf := range mirror.ManagedFields {
		if mf.Manager == FieldManager && mf.Subresource == "" && mf.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

// driftOf compares what mirrorlet owns of mirror with want. Fields only
// others own are not looked at. Spec fields mirrorlet set must still hold
// its values, where admission may have added to them (an atomic list such
// as tolerations with one more item counts as holding them); labels,
// annotations and owners mirrorlet owns must be exactly the manifest's,
// so that one removed from the manifest is removed from the mirror.
func driftOf(mirror *corev1.Pod, want *corev1ac.PodApplyConfiguration) (drift, error) {
	if mirror.Annotations[manifest.AnnotationMirror] != want.Annotations[manifest.AnnotationMirror] ||
		mirror.DeletionTimestamp != nil {
		return specDrift, nil
	}
	owned, ok, err := ownedConfiguration(mirror)
	if err != nil || !ok {
		return specDrift, err
	}
	var have, wantSpec any
	if err := convert(owned.Spec, &have); err != nil {
		return specDrift, err
	}
	if err := convert(want.Spec, &wantSpec); err != nil {
		return specDrift, err
	}
	if !contains(have, wantSpec) {
		return specDrift, nil
	}
	haveMeta, wantMeta := ownedMetadata(owned), ownedMetadata(want)
	var h, w any
	if err := convert(haveMeta, &h); err != nil {
		return specDrift, err
	}
	if err := convert(wantMeta, &w); err != nil {
		return specDrift, err
	}
	if !contains(h, w) || !contains(w, h) {
		return metadataDrift, nil
	}
	return inSync, nil
}

// ownedMetadata is the metadata mirrorlet sets, but for config.seen: when
// the source first saw this version is read again at every start, and the
// value the mirror already shows is the earlier, truer one; it is written
// with the next change (a restart writes no mirror).
func ownedMetadata(ac *corev1ac.PodApplyConfiguration) map[string]any {
	annotations := maps.Clone(ac.Annotations)
	delete(annotations, manifest.AnnotationSeen)
	return map[string]any{
		"labels":          ac.Labels,
		"annotations":     annotations,
		"ownerReferences": ac.OwnerReferences,
	}
}

// convert copies in into out through JSON, as the API server would see it.
func convert(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// contains reports whether have holds everything want holds (both decoded
// JSON). An empty or null value in want is held by an absent one; a list
// of objects holds want's items in any order, each by a different item;
// a list of scalars must be equal.
func contains(have, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, _ := have.(map[string]any)
		for k, wv := range w {
			hv, ok := h[k]
			if !ok && empty(wv) {
				continue
			}
			if !ok || !contains(hv, wv) {
				return false
			}
		}
		return true
	case []any:
		h, _ := have.([]any)
		return listContains(h, w)
	case nil:
		return true
	default:
		return reflect.DeepEqual(have, want)
	}
}

func listContains(have, want []any) bool {
	if len(want) > 0 && !isObject(want[0]) {
		return reflect.DeepEqual(have, want)
	}
	used := make([]bool, len(have))
	for _, wv := range want {
		found := false
		for i, hv := range have {
			if !used[i] && contains(hv, wv) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func isObject(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

func empty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	}
	return false
}
