package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Annotation keys the kubelet uses for static and mirror pods.
const (
	AnnotationSource = "kubernetes.io/config.source"
	AnnotationHash   = "kubernetes.io/config.hash"
	AnnotationSeen   = "kubernetes.io/config.seen"
	AnnotationMirror = "kubernetes.io/config.mirror"
)

// Source names, the values of the kubernetes.io/config.source annotation.
const (
	SourceFile = "file"
	SourceHTTP = "http"
)

// StaticPod is one pod that should run on the node. Treat it as immutable:
// sources build a new one for every change.
type StaticPod struct {
	// Pod is the defaulted pod with its node identity applied: the name is
	// "<name>-<node>", the UID is Hash.
	Pod *corev1.Pod
	// Source is SourceFile or SourceHTTP.
	Source string
	// Origin is the file path or URL the pod was read from.
	Origin string
	// Hash is the spec hash (see the package doc).
	Hash string
	// Content is the manifest as its source read it (a file's bytes); nil
	// when the pod came from a list (a manifest URL's PodList).
	Content []byte
}

// Key returns the namespace and name of the static pod and of its mirror.
func (s *StaticPod) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: s.Pod.Namespace, Name: s.Pod.Name}
}

// Identity says where a pod came from and for which node it runs.
type Identity struct {
	NodeName string
	Source   string
	Origin   string
	// Seen is the time the source first saw this version of the pod.
	Seen time.Time
}

// NewStaticPod applies defaults and the node identity to a copy of pod and
// hashes it. pod must have passed Decode; call Validate on the result.
func NewStaticPod(pod *corev1.Pod, id Identity) (*StaticPod, error) {
	p := pod.DeepCopy()
	SetDefaults(p)
	applyIdentity(p, id.NodeName)
	hash, err := specHash(p, id)
	if err != nil {
		return nil, fmt.Errorf("hashing pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	p.UID = types.UID(hash)
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[AnnotationSource] = id.Source
	p.Annotations[AnnotationHash] = hash
	p.Annotations[AnnotationSeen] = id.Seen.UTC().Format(time.RFC3339Nano)
	return &StaticPod{Pod: p, Source: id.Source, Origin: id.Origin, Hash: hash}, nil
}

// MirrorName returns the name of the static pod (and its mirror) for a
// manifest's metadata.name on node.
func MirrorName(name, node string) string {
	return name + "-" + strings.ToLower(node)
}

func applyIdentity(p *corev1.Pod, node string) {
	node = strings.ToLower(node)
	p.Name = MirrorName(p.Name, node)
	if p.Namespace == "" {
		p.Namespace = corev1.NamespaceDefault
	}
	p.Spec.NodeName = node
	p.GenerateName = ""
	p.ResourceVersion = ""
	p.Status = corev1.PodStatus{}
	tol := corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}
	for _, t := range p.Spec.Tolerations {
		if t == tol {
			return
		}
	}
	p.Spec.Tolerations = append(p.Spec.Tolerations, tol)
}

// specHash hashes what needs a restart when it changes: the spec, and the
// labels and annotations that environment variables read through the
// downward API (a container sees those values only when it starts).
func specHash(p *corev1.Pod, id Identity) (string, error) {
	in := struct {
		Node, Origin, Namespace, Name string
		Spec                          corev1.PodSpec
		EnvMetadata                   map[string]string `json:",omitempty"`
	}{strings.ToLower(id.NodeName), id.Origin, p.Namespace, p.Name, p.Spec, envMetadata(p)}
	b, err := json.Marshal(in)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

// envMetadata returns the label and annotation values that the pod's
// environment variables read (fieldRef metadata.labels['k'] or
// metadata.annotations['k']), keyed by field path; nil when none.
func envMetadata(p *corev1.Pod) map[string]string {
	var out map[string]string
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil {
					continue
				}
				path := e.ValueFrom.FieldRef.FieldPath
				value, ok := metadataValue(p, path)
				if !ok {
					continue
				}
				if out == nil {
					out = map[string]string{}
				}
				out[path] = value
			}
		}
	}
	return out
}

// metadataValue returns the value of a metadata.labels['k'] or
// metadata.annotations['k'] field path.
func metadataValue(p *corev1.Pod, path string) (string, bool) {
	for prefix, m := range map[string]map[string]string{
		"metadata.labels['": p.Labels, "metadata.annotations['": p.Annotations,
	} {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			key, ok := strings.CutSuffix(rest, "']")
			return m[key], ok
		}
	}
	return "", false
}

// SameMetadata reports whether a and b carry the same labels and the same
// annotations, ignoring kubernetes.io/config.seen.
func SameMetadata(a, b *StaticPod) bool {
	return maps.Equal(a.Pod.Labels, b.Pod.Labels) &&
		maps.EqualFunc(withoutSeen(a.Pod.Annotations), withoutSeen(b.Pod.Annotations), func(x, y string) bool { return x == y })
}

func withoutSeen(m map[string]string) map[string]string {
	out := maps.Clone(m)
	delete(out, AnnotationSeen)
	return out
}
