package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// errNameTaken is wrapped by the error for a pod that holds a mirror's
// name and is not that mirror.
var errNameTaken = errors.New("the mirror's name is taken")

// mutation is a mirror that admission changed on mirrorlet's own write:
// fields mirrorlet set came back with other values. Writing again would
// only loop, so that mirror is left as it is until the manifest (want) or
// the mirror's UID changes.
type mutation struct {
	uid  types.UID
	want string
}

// driftOf is driftOf for the reconciler: a mirror whose difference
// admission made on mirrorlet's last write counts as in sync.
func (r *Reconciler) driftOf(mirror *corev1.Pod, ac *corev1ac.PodApplyConfiguration) (drift, error) {
	d, err := driftOf(mirror, ac)
	if err != nil || d == inSync || mirror.DeletionTimestamp != nil ||
		mirror.Annotations[manifest.AnnotationMirror] != ac.Annotations[manifest.AnnotationMirror] {
		return d, err
	}
	if m, ok := r.mutated.Load(client.ObjectKeyFromObject(mirror)); ok && m.(mutation) == mutationOf(mirror, ac) {
		return inSync, nil
	}
	return d, nil
}

func mutationOf(mirror *corev1.Pod, ac *corev1ac.PodApplyConfiguration) mutation {
	b, _ := json.Marshal(ac) // it was marshalled before it was written
	return mutation{uid: mirror.UID, want: string(b)}
}

// settle returns a function that checks the outcome of a write: when the
// mirror written still differs from ac, admission changed what mirrorlet
// set; it says so once (log and Event) and remembers it, so that the next
// reconcile does not write again.
func (r *Reconciler) settle(ctx context.Context, ac *corev1ac.PodApplyConfiguration) func(*corev1.Pod, error) (*corev1.Pod, error) {
	return func(pod *corev1.Pod, err error) (*corev1.Pod, error) {
		if err != nil || pod == nil {
			return pod, err
		}
		key := client.ObjectKeyFromObject(pod)
		d, derr := driftOf(pod, ac)
		if derr != nil || d == inSync {
			r.mutated.Delete(key)
			return pod, derr
		}
		if _, seen := r.mutated.Swap(key, mutationOf(pod, ac)); !seen {
			log.FromContext(ctx).Info("Admission changed fields of the mirror pod that its manifest sets; "+
				"leaving them as they are instead of writing again", "pod", key, "uid", pod.UID, "specChanged", d == specDrift)
			r.cfg.Recorder.Eventf(EventRef(pod), nil, corev1.EventTypeWarning, "MutatedMirrorPod", "WriteMirrorPod",
				"admission changed fields of this mirror that its manifest sets; mirrorlet leaves them (the static pod runs as its manifest says)")
		}
		return pod, nil
	}
}

// explainRefusal tells a refused creation of want apart from a pod that
// holds its name and is not this node's mirror: it reads the pod past the
// cache (which holds only pods bound to this node) and returns an error
// wrapping errNameTaken for such a pod, else err wrapped.
func (r *Reconciler) explainRefusal(ctx context.Context, want *corev1.Pod, err error) error {
	key := client.ObjectKeyFromObject(want)
	pod := &corev1.Pod{}
	if gerr := r.cfg.Reader.Get(ctx, key, pod); gerr != nil {
		if apierrors.IsNotFound(gerr) {
			return fmt.Errorf("creating mirror pod %s: %w", key, err)
		}
		return fmt.Errorf("creating mirror pod %s: %w (and reading the pod holding its name: %w)", key, err, gerr)
	}
	if isMirror(pod) && pod.Spec.NodeName == want.Spec.NodeName {
		return fmt.Errorf("creating mirror pod %s: %w", key, err)
	}
	return nameTaken(pod)
}

// nameTaken is the error for pod, which holds a mirror's name and is not
// this node's mirror.
func nameTaken(pod *corev1.Pod) error {
	what := "is not a mirror pod"
	if isMirror(pod) {
		what = "is a mirror pod of node " + pod.Spec.NodeName
	} else if pod.Spec.NodeName != "" {
		what = "is not a mirror pod (bound to node " + pod.Spec.NodeName + ")"
	}
	return fmt.Errorf("%w: pod %s/%s (uid %s) already exists and %s; the static pod runs, but it has no mirror "+
		"until that pod is deleted or the manifest's name changes", errNameTaken, pod.Namespace, pod.Name, pod.UID, what)
}
