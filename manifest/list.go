package manifest

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// DecodePods reads one Pod or one PodList (kind PodList or List) from YAML
// or JSON, as a manifest URL may serve either. Unknown fields are errors.
func DecodePods(data []byte) ([]*corev1.Pod, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is %d bytes, larger than the limit of %d", len(data), MaxManifestSize)
	}
	doc, err := singleDocument(data)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return nil, fmt.Errorf("reading apiVersion and kind: %w", err)
	}
	if tm.Kind != "PodList" && tm.Kind != "List" {
		pod, err := Decode(data)
		if err != nil {
			return nil, err
		}
		return []*corev1.Pod{pod}, nil
	}
	if tm.APIVersion != "v1" {
		return nil, fmt.Errorf("apiVersion: Invalid value: %q: must be v1", tm.APIVersion)
	}
	var list corev1.PodList
	strictErrs, err := kjson.UnmarshalStrict(js, &list, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", tm.Kind, err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("decoding %s: %w", tm.Kind, errors.Join(strictErrs...))
	}
	pods := make([]*corev1.Pod, 0, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		if p.Kind != "" && p.Kind != "Pod" {
			return nil, fmt.Errorf("items[%d].kind: Invalid value: %q: must be Pod", i, p.Kind)
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// LoadPod defaults, identifies, hashes and validates one decoded pod. On
// failure the error is an *Error.
func LoadPod(pod *corev1.Pod, id Identity) (*StaticPod, error) {
	if pod.Name == "" {
		return nil, &Error{Origin: id.Origin, Fields: fieldRequired("metadata", "name")}
	}
	sp, err := NewStaticPod(pod, id)
	if err != nil {
		return nil, &Error{Origin: id.Origin, Err: err}
	}
	if errs := Validate(sp); len(errs) > 0 {
		return nil, &Error{Origin: id.Origin, Fields: errs}
	}
	return sp, nil
}
