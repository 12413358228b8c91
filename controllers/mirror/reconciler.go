package mirror

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
)

// Config configures a Reconciler.
type Config struct {
	NodeName string
	Client   client.Client
	Desired  *desired.Set
	States   *podstate.Store
	Recorder events.EventRecorder
	// RuntimeName is the scheme of container IDs in status.
	RuntimeName string
	// Tracker records mirror states; default: a new one.
	Tracker *Tracker
	Clock   clock.Clock
	// LogDir, when set, adds the LogsWritable condition to every mirror.
	LogDir LogDirStatus
}

// Reconciler is the mirror reconciler.
type Reconciler struct {
	cfg Config
	// recreate is set once the API server refused a metadata patch:
	// metadata changes then go through delete + create (see recreate.go).
	recreate atomic.Bool
}

// New validates and defaults cfg and returns a Reconciler.
func New(cfg Config) (*Reconciler, error) {
	switch {
	case cfg.NodeName == "":
		return nil, errors.New("node name is required")
	case cfg.Client == nil:
		return nil, errors.New("client is required")
	case cfg.Desired == nil || cfg.States == nil:
		return nil, errors.New("desired set and pod state store are required")
	case cfg.Recorder == nil:
		return nil, errors.New("event recorder is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.RuntimeName == "" {
		cfg.RuntimeName = "containerd"
	}
	if cfg.Tracker == nil {
		cfg.Tracker = NewTracker()
	}
	return &Reconciler{cfg: cfg}, nil
}

// SetupWithManager registers the reconciler. The manager's cache must be
// scoped to pods with spec.nodeName of this node and to this Node.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("mirror").
		For(&corev1.Pod{}).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.allKeys)).
		WatchesRawSource(source.Func(r.watchNode)).
		Complete(r)
}

// watchNode enqueues every static pod, then every key whose desired pod or
// runtime state changes.
func (r *Reconciler) watchNode(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	add := func(key types.NamespacedName) { q.Add(reconcile.Request{NamespacedName: key}) }
	cancelDesired := r.cfg.Desired.Subscribe(add)
	cancelStates := r.cfg.States.Subscribe(add)
	cancelLogs := func() {}
	if r.cfg.LogDir != nil {
		cancelLogs = r.cfg.LogDir.Subscribe(func() {
			for _, req := range r.allKeys(ctx, nil) {
				q.Add(req)
			}
		})
	}
	for _, req := range r.allKeys(ctx, nil) {
		q.Add(req)
	}
	go func() {
		<-ctx.Done()
		cancelDesired()
		cancelStates()
		cancelLogs()
	}()
	return nil
}

func (r *Reconciler) allKeys(context.Context, client.Object) []reconcile.Request {
	var reqs []reconcile.Request
	for _, sp := range r.cfg.Desired.List() {
		reqs = append(reqs, reconcile.Request{NamespacedName: sp.Key()})
	}
	return reqs
}

// Reconcile brings one mirror in line with the node.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	key := req.NamespacedName
	var mirror *corev1.Pod
	pod := &corev1.Pod{}
	switch err := r.cfg.Client.Get(ctx, key, pod); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("getting mirror pod %s: %w", key, err)
	default:
		mirror = pod
	}
	sp, ok := r.cfg.Desired.Get(key)
	if !ok {
		return r.deleteOrphan(ctx, mirror)
	}
	if mirror != nil && !isMirror(mirror) {
		log.FromContext(ctx).Info("A pod that is not a mirror holds the static pod's name; leaving it alone", "pod", key)
		return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
	}
	node := &corev1.Node{}
	if err := r.cfg.Client.Get(ctx, types.NamespacedName{Name: r.cfg.NodeName}, node); err != nil {
		if apierrors.IsNotFound(err) {
			log.FromContext(ctx).V(1).Info("Waiting for the Node to be registered", "node", r.cfg.NodeName)
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		return reconcile.Result{}, fmt.Errorf("getting node %s: %w", r.cfg.NodeName, err)
	}
	mirror, err := r.ensureMirror(ctx, mirror, Build(sp, node))
	if err == nil && mirror != nil {
		err = r.writeStatus(ctx, sp, mirror, node)
	}
	r.track(key, mirror, node, err)
	if err != nil && isRejection(err) {
		// Retrying at once will not help; the static pod keeps running.
		log.FromContext(ctx).Error(err, "API server refused the mirror pod; retrying later", "pod", key)
		return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
	}
	return reconcile.Result{}, err
}

// isRejection reports whether the API server refused a write on its merits
// (admission, validation, quota) rather than failing.
func isRejection(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
}

// track records the outcome for `mirrorlet status` and tells users on the
// Node when the API server starts refusing a mirror.
func (r *Reconciler) track(key types.NamespacedName, mirror *corev1.Pod, node *corev1.Node, err error) {
	st := MirrorState{}
	if mirror != nil {
		st.UID = mirror.UID
	}
	if err != nil {
		st.Error, st.Rejected = err.Error(), isRejection(err)
	}
	old := r.cfg.Tracker.set(key, st)
	if st.Rejected && old.Error != st.Error {
		mirrorRejected.Inc()
		r.cfg.Recorder.Eventf(node, nil, corev1.EventTypeWarning, "FailedCreateMirrorPod", "CreateMirrorPod",
			"API server refused mirror pod %s (the static pod keeps running): %v", key, err)
	}
}

// deleteOrphan deletes a mirror whose static pod is gone.
func (r *Reconciler) deleteOrphan(ctx context.Context, mirror *corev1.Pod) (reconcile.Result, error) {
	if mirror == nil || !isMirror(mirror) {
		return reconcile.Result{}, nil
	}
	if !r.cfg.Desired.Synced() {
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	log.FromContext(ctx).Info("Deleting mirror pod without a static pod", "pod", client.ObjectKeyFromObject(mirror))
	r.cfg.Tracker.forget(client.ObjectKeyFromObject(mirror))
	return reconcile.Result{}, r.delete(ctx, mirror)
}

// ensureMirror creates, recreates or patches the mirror so that it matches
// want, and returns the mirror as it now is.
func (r *Reconciler) ensureMirror(ctx context.Context, mirror, want *corev1.Pod) (*corev1.Pod, error) {
	if mirror != nil && needsRecreate(mirror, want) {
		log.FromContext(ctx).Info("Recreating mirror pod", "pod", client.ObjectKeyFromObject(mirror),
			"deleting", mirror.DeletionTimestamp != nil, "hash", want.Annotations[manifest.AnnotationMirror])
		if err := r.delete(ctx, mirror); err != nil {
			return nil, err
		}
		mirror = nil
	}
	if mirror == nil {
		return r.create(ctx, want)
	}
	if !metadataDiffers(mirror, want) {
		return mirror, nil
	}
	if r.recreateOnly() {
		return r.recreateForMetadata(ctx, mirror, want)
	}
	patched, err := r.patchMetadata(ctx, mirror, want)
	if patchForbidden(err) {
		r.enterRecreateMode(ctx, mirror, err)
		return r.recreateForMetadata(ctx, mirror, want)
	}
	return patched, err
}

// patchMetadata patches labels, annotations, owners and finalizers of
// mirror back to want's.
func (r *Reconciler) patchMetadata(ctx context.Context, mirror, want *corev1.Pod) (*corev1.Pod, error) {
	patched := mirror.DeepCopy()
	patched.Labels, patched.Annotations = want.Labels, want.Annotations
	patched.OwnerReferences, patched.Finalizers = want.OwnerReferences, nil
	patch := client.MergeFromWithOptions(mirror, client.MergeFromWithOptimisticLock{})
	if err := r.cfg.Client.Patch(ctx, patched, patch); err != nil {
		return nil, fmt.Errorf("patching mirror pod %s metadata: %w", client.ObjectKeyFromObject(mirror), err)
	}
	log.FromContext(ctx).Info("Patched mirror pod metadata", "pod", client.ObjectKeyFromObject(mirror))
	return patched, nil
}

func (r *Reconciler) create(ctx context.Context, want *corev1.Pod) (*corev1.Pod, error) {
	obj := want.DeepCopy()
	err := r.cfg.Client.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		// The cache is behind; the next event brings the mirror.
		return nil, nil
	}
	if err != nil {
		mirrorWrites.WithLabelValues("create", "error").Inc()
		return nil, fmt.Errorf("creating mirror pod %s: %w", client.ObjectKeyFromObject(want), err)
	}
	mirrorWrites.WithLabelValues("create", "ok").Inc()
	log.FromContext(ctx).Info("Created mirror pod", "pod", client.ObjectKeyFromObject(obj), "uid", obj.UID)
	return obj, nil
}

// delete removes a mirror at once, only if it is still the object we saw.
func (r *Reconciler) delete(ctx context.Context, mirror *corev1.Pod) error {
	if len(mirror.Finalizers) > 0 && !r.recreateOnly() {
		patched := mirror.DeepCopy()
		patched.Finalizers = nil
		err := r.cfg.Client.Patch(ctx, patched, client.MergeFrom(mirror))
		switch {
		case patchForbidden(err):
			// Under the kubelet's rules; whoever added the finalizer
			// removes it, and the new mirror is created after that.
			r.enterRecreateMode(ctx, mirror, err)
		case err != nil && !apierrors.IsNotFound(err):
			return fmt.Errorf("removing finalizers of mirror pod %s: %w", client.ObjectKeyFromObject(mirror), err)
		}
	}
	err := r.cfg.Client.Delete(ctx, mirror, client.GracePeriodSeconds(0), client.Preconditions{UID: &mirror.UID})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		return fmt.Errorf("deleting mirror pod %s: it changed meanwhile, retrying: %w", client.ObjectKeyFromObject(mirror), err)
	case err != nil:
		mirrorWrites.WithLabelValues("delete", "error").Inc()
		return fmt.Errorf("deleting mirror pod %s: %w", client.ObjectKeyFromObject(mirror), err)
	}
	mirrorWrites.WithLabelValues("delete", "ok").Inc()
	return nil
}

// writeStatus writes the mirror's status when what runs differs from it.
func (r *Reconciler) writeStatus(ctx context.Context, sp *manifest.StaticPod, mirror *corev1.Pod, node *corev1.Node) error {
	state, ok := r.cfg.States.Get(sp.Key())
	if ok && state.UID != sp.Pod.UID {
		state, ok = podstate.State{}, false // the runtime still runs the old version
	}
	st := computeStatus(statusInput{
		spec: &sp.Pod.Spec, state: state, hasState: ok, problems: r.cfg.Desired.Problems(sp.Key()),
		have: mirror.Status, hostIP: nodeIP(node), runtimeName: r.cfg.RuntimeName, now: r.cfg.Clock.Now(),
		logDir: r.cfg.LogDir,
	})
	if equality.Semantic.DeepEqual(st, mirror.Status) {
		return nil
	}
	updated := mirror.DeepCopy()
	updated.Status = st
	if err := r.cfg.Client.Status().Patch(ctx, updated, client.MergeFrom(mirror)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile; its delete event brings us back
		}
		mirrorWrites.WithLabelValues("status", "error").Inc()
		return fmt.Errorf("writing status of mirror pod %s: %w", sp.Key(), err)
	}
	mirrorWrites.WithLabelValues("status", "ok").Inc()
	r.recordEvents(updated, mirror.Status, st)
	return nil
}

func nodeIP(node *corev1.Node) string {
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}
