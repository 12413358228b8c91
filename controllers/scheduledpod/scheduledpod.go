package scheduledpod

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mirrorlet/mirrorlet/controllers/node"
	"github.com/mirrorlet/mirrorlet/manifest"
)

// Reason is the status reason and Event reason of a rejected pod.
const Reason = "NodeRunsStaticPodsOnly"

// Config configures a Reconciler.
type Config struct {
	NodeName string
	Client   client.Client
	Recorder events.EventRecorder
}

// Reconciler fails the pods bound to its node that are not mirrors.
type Reconciler struct {
	cfg Config
}

// New validates cfg and returns a Reconciler.
func New(cfg Config) (*Reconciler, error) {
	if cfg.NodeName == "" || cfg.Client == nil || cfg.Recorder == nil {
		return nil, errors.New("node name, client and event recorder are required")
	}
	return &Reconciler{cfg: cfg}, nil
}

// SetupWithManager registers the reconciler. The manager's cache must be
// scoped to pods with spec.nodeName of this node.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("scheduledpod").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			pod, ok := o.(*corev1.Pod)
			return ok && r.mustReject(pod)
		}))).
		Complete(r)
}

// mustReject reports whether pod is bound to this node, is not a mirror
// and has not ended.
func (r *Reconciler) mustReject(pod *corev1.Pod) bool {
	_, mirror := pod.Annotations[manifest.AnnotationMirror]
	return !mirror && pod.Spec.NodeName == r.cfg.NodeName &&
		pod.Status.Phase != corev1.PodFailed && pod.Status.Phase != corev1.PodSucceeded
}

// Reconcile rejects one pod bound to this node.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pod := &corev1.Pod{}
	if err := r.cfg.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("getting pod %s: %w", req.NamespacedName, err)
	}
	if !r.mustReject(pod) {
		return reconcile.Result{}, nil
	}
	msg := Message(r.cfg.NodeName)
	rejected := pod.DeepCopy()
	rejected.Status.Phase = corev1.PodFailed
	rejected.Status.Reason = Reason
	rejected.Status.Message = msg
	rejected.Status.ObservedGeneration = pod.Generation
	if err := r.cfg.Client.Status().Patch(ctx, rejected, client.MergeFromWithOptions(pod, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("rejecting pod %s: %w", req.NamespacedName, err)
	}
	log.FromContext(ctx).Info("Rejected a pod the scheduler bound to this node", "pod", req.NamespacedName, "reason", Reason)
	r.cfg.Recorder.Eventf(rejected, nodeRef(r.cfg.NodeName), corev1.EventTypeWarning, Reason, "AdmitPod", "%s", msg)
	return reconcile.Result{}, nil
}

// Message is the status message of a pod rejected on nodeName: what the
// node is, and the node affinity that keeps DaemonSets off it.
func Message(nodeName string) string {
	return fmt.Sprintf("Pod was rejected: node %s runs static pods only (mirrorlet) and never runs pods from the API server. "+
		"Keep DaemonSets and other pods off such nodes with a required node affinity on the Node label %s: "+
		"{key: %s, operator: DoesNotExist}", nodeName, node.LabelAgent, node.LabelAgent)
}

func nodeRef(name string) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: name}
}
