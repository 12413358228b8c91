package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Labels and taint mirrorlet puts on its Node.
const (
	LabelAgent    = "node.mirrorlet.io/agent"
	AgentName     = "mirrorlet"
	TaintStatic   = "node.mirrorlet.io/static-only"
	LeaseNS       = "kube-node-lease"
	leaseDuration = 40
)

// Config configures a Registrar.
type Config struct {
	NodeName string
	Client   client.Client
	// Reader reads without the cache (Leases are not cached).
	Reader client.Reader
	// Version is mirrorlet's version, shown in nodeInfo.
	Version string
	// RuntimeVersion is "<runtime>://<version>", shown in nodeInfo.
	RuntimeVersion string
	// RuntimeStatus reports whether the container runtime is ready.
	RuntimeStatus func(context.Context) error
	// Addresses of the node; default: detected from the host.
	Addresses []corev1.NodeAddress
	// KubeletPort is the node API's port, advertised in
	// status.daemonEndpoints.kubeletEndpoint; 0: none.
	KubeletPort int32
	// Labels are extra labels for a newly registered Node.
	Labels map[string]string
	// Register makes the Registrar create the Node when it does not exist;
	// otherwise it waits for someone else to.
	Register      bool
	LeaseInterval time.Duration
	// StatusInterval is how often the Ready condition's heartbeat is
	// refreshed even without a change. Default 1m.
	StatusInterval time.Duration
	Clock          clock.WithTicker
}

// Registrar keeps the Node and its Lease.
type Registrar struct {
	cfg Config
	// lease is the Lease as the last renewal wrote it (only the lease
	// renewer's goroutine touches it): the next renewal updates it without
	// reading it first, as the kubelet's lease controller does, which halves
	// a fleet's steady requests. Nil after an error: read it again.
	lease *coordinationv1.Lease
}

// New validates and defaults cfg and returns a Registrar.
func New(cfg Config) (*Registrar, error) {
	switch {
	case cfg.NodeName == "":
		return nil, errors.New("node name is required")
	case cfg.Client == nil || cfg.Reader == nil:
		return nil, errors.New("client and reader are required")
	case cfg.RuntimeStatus == nil:
		return nil, errors.New("runtime status function is required")
	}
	if cfg.LeaseInterval <= 0 {
		cfg.LeaseInterval = 10 * time.Second
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Addresses == nil {
		cfg.Addresses = hostAddresses(cfg.NodeName)
	}
	return &Registrar{cfg: cfg}, nil
}

// SetupWithManager registers the Node reconciler and the Lease renewer.
func (r *Registrar) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(&leaseRenewer{r: r}); err != nil {
		return fmt.Errorf("adding lease renewer: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("node").
		For(&corev1.Node{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetName() == r.cfg.NodeName
		}))).
		// The Node may not exist yet: reconcile it once at start regardless.
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: r.cfg.NodeName}})
			return nil
		})).
		Complete(r)
}

// Reconcile registers the Node if missing and keeps its Ready condition.
func (r *Registrar) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	node := &corev1.Node{}
	err := r.cfg.Client.Get(ctx, types.NamespacedName{Name: r.cfg.NodeName}, node)
	if apierrors.IsNotFound(err) {
		if !r.cfg.Register {
			log.FromContext(ctx).Info("Node does not exist and node registration is off; waiting for it", "node", r.cfg.NodeName)
			return reconcile.Result{RequeueAfter: r.cfg.LeaseInterval}, nil
		}
		if node, err = r.register(ctx); err != nil {
			return reconcile.Result{}, err
		}
	} else if err != nil {
		return reconcile.Result{}, fmt.Errorf("getting node %s: %w", r.cfg.NodeName, err)
	}
	if err := r.updateStatus(ctx, node); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: r.cfg.LeaseInterval}, nil
}

func (r *Registrar) register(ctx context.Context) (*corev1.Node, error) {
	labels := map[string]string{
		corev1.LabelHostname:   r.cfg.NodeName,
		corev1.LabelOSStable:   runtime.GOOS,
		corev1.LabelArchStable: runtime.GOARCH,
		LabelAgent:             AgentName,
	}
	for k, v := range r.cfg.Labels {
		labels[k] = v
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: r.cfg.NodeName, Labels: labels},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{
			Key: TaintStatic, Value: "true", Effect: corev1.TaintEffectNoSchedule,
		}}},
	}
	if err := r.cfg.Client.Create(ctx, node); err != nil {
		return nil, fmt.Errorf("registering node %s: %w", r.cfg.NodeName, err)
	}
	log.FromContext(ctx).Info("Registered node", "node", r.cfg.NodeName, "uid", node.UID)
	return node, nil
}

// updateStatus writes Ready, addresses and nodeInfo when they change, and
// refreshes the heartbeat every StatusInterval.
func (r *Registrar) updateStatus(ctx context.Context, node *corev1.Node) error {
	now := metav1.NewTime(r.cfg.Clock.Now()).Rfc3339Copy()
	ready := corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "MirrorletReady",
		Message: "mirrorlet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
	}
	if err := r.cfg.RuntimeStatus(ctx); err != nil {
		ready.Status, ready.Reason = corev1.ConditionFalse, "RuntimeNotReady"
		ready.Message = fmt.Sprintf("container runtime is not ready: %v", err)
	}
	want := node.DeepCopy()
	want.Status.Addresses = r.cfg.Addresses
	want.Status.NodeInfo = r.nodeInfo()
	want.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: r.cfg.KubeletPort}}
	var old *corev1.NodeCondition
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == corev1.NodeReady {
			old = &node.Status.Conditions[i]
		}
	}
	if old != nil && old.Status == ready.Status {
		ready.LastTransitionTime = old.LastTransitionTime
		fresh := now.Sub(old.LastHeartbeatTime.Time) < r.cfg.StatusInterval
		if fresh && old.Reason == ready.Reason && old.Message == ready.Message &&
			addressesEqual(node.Status.Addresses, want.Status.Addresses) && node.Status.NodeInfo == want.Status.NodeInfo &&
			node.Status.DaemonEndpoints == want.Status.DaemonEndpoints {
			return nil
		}
	}
	want.Status.Conditions = []corev1.NodeCondition{ready}
	if err := r.cfg.Client.Status().Patch(ctx, want, client.MergeFrom(node)); err != nil {
		return fmt.Errorf("updating status of node %s: %w", r.cfg.NodeName, err)
	}
	return nil
}

func addressesEqual(a, b []corev1.NodeAddress) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (r *Registrar) nodeInfo() corev1.NodeSystemInfo {
	return corev1.NodeSystemInfo{
		MachineID:               readTrimmed("/etc/machine-id"),
		BootID:                  readTrimmed("/proc/sys/kernel/random/boot_id"),
		KernelVersion:           readTrimmed("/proc/sys/kernel/osrelease"),
		OSImage:                 osImage(),
		ContainerRuntimeVersion: r.cfg.RuntimeVersion,
		KubeletVersion:          AgentName + "-" + r.cfg.Version,
		OperatingSystem:         runtime.GOOS,
		Architecture:            runtime.GOARCH,
	}
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func osImage() string {
	for line := range strings.SplitSeq(readTrimmed("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

// HostIP returns the first non-loopback IPv4 address of the host
// (127.0.0.1 if there is none): the node's InternalIP.
func HostIP() string {
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// hostAddresses returns the node's InternalIP and hostname addresses.
func hostAddresses(nodeName string) []corev1.NodeAddress {
	return Addresses(HostIP(), nodeName)
}

// Addresses returns the addresses a Node advertises: its InternalIP, and
// hostname (which the API server may dial when it prefers Hostname).
func Addresses(internalIP, hostname string) []corev1.NodeAddress {
	return []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: internalIP},
		{Type: corev1.NodeHostName, Address: hostname},
	}
}

// leaseRenewer renews the node Lease every LeaseInterval.
type leaseRenewer struct{ r *Registrar }

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (l *leaseRenewer) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable.
func (l *leaseRenewer) Start(ctx context.Context) error {
	for {
		wait := l.r.cfg.LeaseInterval
		if err := l.r.renewLease(ctx); err != nil {
			// The Node may be being registered: retry sooner.
			log.FromContext(ctx).V(1).Info("Renewing node lease failed, retrying", "node", l.r.cfg.NodeName, "error", err.Error())
			wait = min(wait, time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.r.cfg.Clock.After(wait):
		}
	}
}

// HolderIdentity is the holder mirrorlet writes into its node Lease. A
// kubelet writes the bare node name.
func HolderIdentity(nodeName string) string { return AgentName + "/" + nodeName }

func (r *Registrar) renewLease(ctx context.Context) error {
	node := &corev1.Node{}
	if err := r.cfg.Client.Get(ctx, types.NamespacedName{Name: r.cfg.NodeName}, node); err != nil {
		return fmt.Errorf("getting node for its lease: %w", err)
	}
	now := metav1.NewMicroTime(r.cfg.Clock.Now())
	if r.lease != nil {
		return r.updateLease(ctx, r.lease.DeepCopy(), node, now)
	}
	lease := &coordinationv1.Lease{}
	key := types.NamespacedName{Namespace: LeaseNS, Name: r.cfg.NodeName}
	err := r.cfg.Reader.Get(ctx, key, lease)
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: r.cfg.NodeName, Namespace: LeaseNS,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(HolderIdentity(r.cfg.NodeName)),
				LeaseDurationSeconds: ptr.To[int32](leaseDuration), RenewTime: &now},
		}
		if err := r.cfg.Client.Create(ctx, lease); err != nil {
			return fmt.Errorf("creating node lease: %w", err)
		}
		r.lease = lease
		return nil
	}
	if err != nil {
		return fmt.Errorf("getting node lease: %w", err)
	}
	return r.updateLease(ctx, lease, node, now)
}

// updateLease renews lease (as last read or written) and keeps the result
// for the next renewal; on error (a conflict: someone else wrote it) the
// next renewal reads it again.
func (r *Registrar) updateLease(ctx context.Context, lease *coordinationv1.Lease, node *corev1.Node, now metav1.MicroTime) error {
	lease.Spec.HolderIdentity = ptr.To(HolderIdentity(r.cfg.NodeName))
	lease.Spec.LeaseDurationSeconds = ptr.To[int32](leaseDuration)
	lease.Spec.RenewTime = &now
	lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
	if err := r.cfg.Client.Update(ctx, lease); err != nil {
		r.lease = nil
		return fmt.Errorf("renewing node lease: %w", err)
	}
	r.lease = lease
	return nil
}
