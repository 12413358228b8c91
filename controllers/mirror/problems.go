package mirror

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mirrorlet/mirrorlet/manifest/desired"
)

// ProblemReporter tells users, with Warning Events on the Node, about
// manifests that run no pod: files that never loaded, pods refused for a
// name or host port another manifest holds. (Problems of a pod whose last
// good version runs are reported on its mirror instead.)
type ProblemReporter struct {
	NodeName string
	Client   client.Client
	Desired  *desired.Set
	Recorder events.EventRecorder
	// Period between checks; default 1s.
	Period time.Duration
	// reported holds the messages already reported.
	reported sets.Set[string]
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (p *ProblemReporter) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable.
func (p *ProblemReporter) Start(ctx context.Context) error {
	if p.NodeName == "" || p.Client == nil || p.Desired == nil || p.Recorder == nil {
		return errors.New("problem reporter needs a node name, client, desired set and recorder")
	}
	if p.Period <= 0 {
		p.Period = time.Second
	}
	p.reported = sets.New[string]()
	ticker := time.NewTicker(p.Period)
	defer ticker.Stop()
	for {
		p.report(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func (p *ProblemReporter) report(ctx context.Context) {
	current := sets.New[string]()
	refused := map[string]types.NamespacedName{}
	for _, pr := range p.Desired.AllProblems() {
		if pr.Key.Name == "" {
			current.Insert(pr.Err.Error())
			refused[pr.Err.Error()] = pr.Refused
		}
	}
	fresh := current.Difference(p.reported)
	if fresh.Len() == 0 {
		p.reported = current
		return
	}
	node := &corev1.Node{}
	if err := p.Client.Get(ctx, types.NamespacedName{Name: p.NodeName}, node); err != nil {
		log.FromContext(ctx).V(1).Info("Node not available for manifest problem events yet", "error", err.Error())
		return // try again next period
	}
	for _, msg := range sets.List(fresh) {
		p.Recorder.Eventf(node, refusedPod(refused[msg]), corev1.EventTypeWarning, "FailedLoadManifest", "LoadManifest", "%s", msg)
	}
	p.reported = current
}

// refusedPod is the related object of a refusal's Event: the pod (by its
// mirror's name) that was refused. Events about the Node that differ in
// it are separate Events: the recorder folds Events that share regarding,
// related, reason and action into one series and keeps the first note, so
// without it a second refusal on the Node would only bump a count.
func refusedPod(key types.NamespacedName) runtime.Object {
	if key.Name == "" {
		return nil
	}
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: key.Namespace, Name: key.Name}
}
