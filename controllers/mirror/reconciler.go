package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/controllers/podstatus"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
)

// Config configures a Reconciler.
type Config struct {
	NodeName string
	Client   client.Client
	// Reader reads past the cache (a pod holding a mirror's name may be
	// bound to another node); default: Client.
	Reader   client.Reader
	Desired  *desired.Set
	States   *podstate.Store
	Recorder events.EventRecorder
	// RuntimeName is the scheme of container IDs in status.
	RuntimeName string
	// Tracker records mirror states; default: a new one.
	Tracker *Tracker
	Clock   clock.Clock
	// LogDir, when set, adds the LogsWritable condition to every mirror.
	LogDir podstatus.LogDirStatus
	// Workers is how many mirrors are written at once (each key by one
	// worker at a time): mirror writes wait on the API server, so they run
	// in parallel, as the kubelet writes mirrors from its per-pod workers;
	// the client's limiter and the API server's Priority and Fairness bound
	// the load. Default: DefaultWorkers.
	Workers int
}

// DefaultWorkers is Config.Workers's default.
const DefaultWorkers = 100

// Reconciler is the mirror reconciler.
type Reconciler struct {
	cfg Config
	// recreate is set once the API server refused a metadata patch:
	// metadata changes then go through delete + create (see recreate.go).
	recreate atomic.Bool
	// mutated holds, by key, the mirrors admission changed on mirrorlet's
	// last write (see settle).
	mutated sync.Map
	// written holds mirrorlet's writes the cache has not received yet.
	written written
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
	if cfg.Reader == nil {
		cfg.Reader = cfg.Client
	}
	if cfg.RuntimeName == "" {
		cfg.RuntimeName = "containerd"
	}
	if cfg.Tracker == nil {
		cfg.Tracker = NewTracker()
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	return &Reconciler{cfg: cfg, written: written{clock: cfg.Clock}}, nil
}

// SetupWithManager registers the reconciler. The manager's cache must be
// scoped to pods with spec.nodeName of this node and to this Node.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("mirror").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.cfg.Workers}).
		Watches(&corev1.Pod{}, r.written.events()).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.allKeys), builder.WithPredicates(mirrorInputChanged())).
		WatchesRawSource(source.Func(r.watchNode)).
		Complete(r)
}

// mirrorInputChanged passes the Node events that change mirrors: the Node
// registered or deleted, another UID (mirrors' owner) or InternalIP (their
// hostIP). A heartbeat, which rewrites the Node's status every minute,
// wakes no mirror.
func mirrorInputChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldNode, ok1 := e.ObjectOld.(*corev1.Node)
			newNode, ok2 := e.ObjectNew.(*corev1.Node)
			return !ok1 || !ok2 || oldNode.UID != newNode.UID || nodeIP(oldNode) != nodeIP(newNode)
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
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
	var cached *corev1.Pod
	pod := &corev1.Pod{}
	switch err := r.cfg.Client.Get(ctx, key, pod); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("getting mirror pod %s: %w", key, err)
	case removing(pod) && (len(pod.Finalizers) == 0 || r.recreateOnly()):
		// Deleted with grace period 0 (forced): the API server is
		// removing it now, and its delete event brings the create. One
		// with finalizers stays until they go: it is replaced as a
		// terminating mirror is (see delete), unless mirrorlet may not
		// patch pods and so cannot remove them; then whoever added them
		// does, and the delete event comes after that.
		return reconcile.Result{}, nil
	default:
		cached = pod
	}
	mirror, behind := r.written.view(key, cached)
	sp, ok := r.cfg.Desired.Get(key)
	if !ok {
		r.written.forget(key)
		return r.deleteOrphan(ctx, mirror)
	}
	node := &corev1.Node{}
	if err := r.cfg.Client.Get(ctx, types.NamespacedName{Name: r.cfg.NodeName}, node); err != nil {
		if apierrors.IsNotFound(err) {
			log.FromContext(ctx).V(1).Info("Waiting for the Node to be registered", "node", r.cfg.NodeName)
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		return reconcile.Result{}, fmt.Errorf("getting node %s: %w", r.cfg.NodeName, err)
	}
	seen := mirror
	mirror, err := r.sync(ctx, sp, mirror, node)
	r.remember(key, seen, mirror, err)
	r.track(key, mirror, node, err)
	switch {
	case errors.Is(err, errNameTaken):
		// A pod on another node sends no event here when it goes.
		log.FromContext(ctx).Error(err, "Another pod holds the mirror pod's name; retrying later", "pod", key)
		return reconcile.Result{RequeueAfter: 10 * time.Second}, nil
	case err != nil && isRejection(err):
		// Retrying at once will not help; the static pod keeps running.
		log.FromContext(ctx).Error(err, "API server refused the mirror pod; retrying later", "pod", key)
		return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
	case err == nil && behind:
		// Read the cache again once it has had time to catch up: a
		// watch broken meanwhile may never bring this key's write.
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	return reconcile.Result{}, err
}

// sync writes the mirror and its status so that they match sp, and
// returns the mirror as it now is.
func (r *Reconciler) sync(ctx context.Context, sp *manifest.StaticPod, mirror *corev1.Pod, node *corev1.Node) (*corev1.Pod, error) {
	if mirror != nil && !isMirror(mirror) {
		// A pod bound to this node under the mirror's name: never ours.
		return nil, nameTaken(mirror)
	}
	mirror, err := r.ensureMirror(ctx, mirror, Build(sp, node))
	if err != nil || mirror == nil {
		return mirror, err
	}
	return r.writeStatus(ctx, sp, mirror, node)
}

// remember records the mirror a write of this reconcile left (not one it
// only read: the record is a copy of the pod, dropped once the cache has
// it), for the reconciles that run before the cache has it (see written).
func (r *Reconciler) remember(key types.NamespacedName, seen, mirror *corev1.Pod, err error) {
	switch {
	case err != nil:
		r.written.forget(key)
	case mirror != seen:
		r.written.record(key, mirror)
	}
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
		st.Error, st.Rejected, st.NameTaken = err.Error(), isRejection(err), errors.Is(err, errNameTaken)
	}
	old := r.cfg.Tracker.set(key, st)
	switch {
	case old.Error == st.Error:
	case st.NameTaken:
		mirrorRejected.Inc()
		r.cfg.Recorder.Eventf(node, refusedPod(key), corev1.EventTypeWarning, "FailedCreateMirrorPod", "CreateMirrorPod",
			"cannot create mirror pod %s (the static pod keeps running): %v", key, err)
	case st.Rejected:
		mirrorRejected.Inc()
		r.cfg.Recorder.Eventf(node, nil, corev1.EventTypeWarning, "FailedCreateMirrorPod", "CreateMirrorPod",
			"API server refused mirror pod %s (the static pod keeps running): %v", key, err)
	}
}

// removing reports whether pod was deleted with grace period 0: the API
// server records that (an update, seen before the delete event) and
// removes it at once; deleting it again would only be refused (NotFound).
func removing(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds == 0
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

// ensureMirror creates, recreates or applies the mirror so that the fields
// mirrorlet owns match want, and returns the mirror as it now is. Fields
// other managers own (admission's labels, tolerations, containers) are
// not compared and never written.
func (r *Reconciler) ensureMirror(ctx context.Context, mirror, want *corev1.Pod) (*corev1.Pod, error) {
	ac, err := applyConfiguration(want)
	if err != nil {
		return nil, err
	}
	d := specDrift
	if mirror != nil {
		if d, err = r.driftOf(mirror, ac); err != nil {
			return nil, err
		}
		if d == metadataDrift && !r.recreateOnly() && !applied(mirror) {
			d = specDrift // see applied
		}
	}
	switch {
	case mirror != nil && d == inSync:
		return mirror, nil
	case mirror != nil && d == specDrift:
		log.FromContext(ctx).Info("Recreating mirror pod", "pod", client.ObjectKeyFromObject(mirror),
			"deleting", mirror.DeletionTimestamp != nil, "hash", want.Annotations[manifest.AnnotationMirror])
		if err := r.delete(ctx, mirror); err != nil {
			return nil, err
		}
		mirror = nil
	}
	if mirror == nil {
		return r.settle(ctx, ac)(r.create(ctx, want, ac))
	}
	if r.recreateOnly() {
		return r.settle(ctx, ac)(r.recreateForMetadata(ctx, mirror, want))
	}
	applied, err := r.apply(ctx, "apply", want, ac)
	if patchForbidden(err) {
		r.enterRecreateMode(ctx, mirror, err)
		applied, err = r.recreateForMetadata(ctx, mirror, want)
	}
	return r.settle(ctx, ac)(applied, err)
}

// apply writes ac with server-side apply as FieldManager, forcing: a field
// someone else took from mirrorlet is taken back. It creates the mirror
// when there is none; it cannot take over a pod that is not this mirror
// (config.mirror and spec.nodeName are immutable). op says which it is
// meant to be, for metrics and logs: "create" or "apply".
func (r *Reconciler) apply(ctx context.Context, op string, want *corev1.Pod, ac *corev1ac.PodApplyConfiguration) (*corev1.Pod, error) {
	body, err := json.Marshal(ac)
	if err != nil {
		return nil, fmt.Errorf("encoding mirror pod %s: %w", client.ObjectKeyFromObject(want), err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: want.Name, Namespace: want.Namespace}}
	err = r.cfg.Client.Patch(ctx, pod, client.RawPatch(types.ApplyPatchType, body),
		client.ForceOwnership, client.FieldOwner(FieldManager))
	if err != nil {
		mirrorWrites.WithLabelValues(op, "error").Inc()
		return nil, fmt.Errorf("applying mirror pod %s: %w", client.ObjectKeyFromObject(want), err)
	}
	mirrorWrites.WithLabelValues(op, "ok").Inc()
	if op == "create" {
		log.FromContext(ctx).Info("Created mirror pod", "pod", client.ObjectKeyFromObject(pod), "uid", pod.UID)
	} else {
		log.FromContext(ctx).Info("Applied mirror pod", "pod", client.ObjectKeyFromObject(pod), "uid", pod.UID)
	}
	return pod, nil
}

// create makes a new mirror: by apply, or by create when this identity
// may not patch pods. A pod that already holds the name and is not this
// mirror is reported (see nameTaken), not written.
func (r *Reconciler) create(ctx context.Context, want *corev1.Pod, ac *corev1ac.PodApplyConfiguration) (*corev1.Pod, error) {
	if !r.recreateOnly() {
		created, err := r.apply(ctx, "create", want, ac)
		if patchForbidden(err) {
			r.enterRecreateMode(ctx, want, err)
			return r.createOnly(ctx, want)
		}
		if err != nil && (apierrors.IsInvalid(err) || apierrors.IsForbidden(err)) {
			return nil, r.explainRefusal(ctx, want, err)
		}
		return created, err
	}
	return r.createOnly(ctx, want)
}

// createOnly creates the mirror with a plain create, as FieldManager.
func (r *Reconciler) createOnly(ctx context.Context, want *corev1.Pod) (*corev1.Pod, error) {
	obj := want.DeepCopy()
	err := r.cfg.Client.Create(ctx, obj, client.FieldOwner(FieldManager))
	if apierrors.IsAlreadyExists(err) {
		if taken := r.explainRefusal(ctx, want, err); errors.Is(taken, errNameTaken) {
			return nil, taken
		}
		return nil, nil // the cache is behind; the next event brings the mirror
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
		// Only from the mirror as seen (resourceVersion checked): a stale
		// read must not strip the finalizers of the mirror that replaced
		// it under the same name.
		patched := mirror.DeepCopy()
		patched.Finalizers = nil
		err := r.cfg.Client.Patch(ctx, patched, client.MergeFromWithOptions(mirror, client.MergeFromWithOptimisticLock{}))
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

// writeStatus writes the mirror's status when what runs differs from it,
// and returns the mirror as it now is.
func (r *Reconciler) writeStatus(ctx context.Context, sp *manifest.StaticPod, mirror *corev1.Pod, node *corev1.Node) (*corev1.Pod, error) {
	state, ok := r.cfg.States.Get(sp.Key())
	if !ok && mirror.Status.Phase != "" {
		// Not known yet (mirrorlet just started, the runtime does not
		// answer): the mirror keeps what it shows rather than going back
		// to Pending. A new mirror shows Pending at once.
		return mirror, nil
	}
	if ok && state.UID != sp.Pod.UID {
		state, ok = podstate.State{}, false // the runtime still runs the old version
	}
	st := podstatus.Compute(podstatus.Input{
		Spec: &sp.Pod.Spec, State: state, HasState: ok, Problems: r.cfg.Desired.Problems(sp.Key()),
		Have: mirror.Status, HostIP: nodeIP(node), RuntimeName: r.cfg.RuntimeName, Now: r.cfg.Clock.Now(),
		Annotations: sp.Pod.Annotations,
		Generation:  mirror.Generation,
		LogDir:      r.cfg.LogDir,
	})
	if equality.Semantic.DeepEqual(st, mirror.Status) {
		return mirror, nil
	}
	updated := mirror.DeepCopy()
	updated.Status = st
	if err := r.cfg.Client.Status().Patch(ctx, updated, client.MergeFrom(mirror)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil // deleted meanwhile; its delete event brings us back
		}
		mirrorWrites.WithLabelValues("status", "error").Inc()
		return nil, fmt.Errorf("writing status of mirror pod %s: %w", sp.Key(), err)
	}
	mirrorWrites.WithLabelValues("status", "ok").Inc()
	r.recordEvents(updated, mirror.Status, st)
	return updated, nil
}

func nodeIP(node *corev1.Node) string {
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}
