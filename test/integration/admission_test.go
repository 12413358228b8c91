package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// writeWindow is how long a test watches mirrorlet's pod writes once the
// mirror is settled.
const writeWindow = 10 * time.Second

// TestMutatingAdmissionPolicyDoesNotLoop: a MutatingAdmissionPolicy adds a
// toleration and a label to every pod of the node, on create and update.
// mirrorlet writes its mirror with server-side apply and leaves what the
// policy added alone: a bounded number of writes, none once settled; a
// label edit in the manifest still reaches the mirror in place, and the
// manifest's own values win.
func TestMutatingAdmissionPolicyDoesNotLoop(t *testing.T) {
	node := newNodeName("map")
	installTolerationPolicy(t, node)
	writes, counting := countPodWrites(t)
	a := startAgent(t, node, "", nil, counting)
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "a"}, "nginx:1.27"))
	m := a.WaitMirror("web", func(p *corev1.Pod) bool {
		return isSettled(p) && p.Labels["injected-by"] == "policy" && hasInjectedToleration(p)
	})
	settled := writes.Total()
	checkNoWrites(t, writes, writeWindow, "after the mirror is Running")
	t.Logf("pod writes until the mirror ran: %d %s", settled, writes)
	if settled > 6 {
		t.Errorf("%d pod writes to create one mirror and its status (%s), want at most 6", settled, writes)
	}

	a.Write("web.yaml", podManifest("web", map[string]string{"role": "b"}, "nginx:1.27"))
	got := a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "b" })
	if got.UID != m.UID || got.Labels["injected-by"] != "policy" || !hasInjectedToleration(got) {
		t.Errorf("label edit: uid %s (was %s), labels %v, tolerations %v; want the same mirror, with the policy's label and toleration",
			got.UID, m.UID, got.Labels, got.Spec.Tolerations)
	}
	checkNoWrites(t, writes, writeWindow, "after the label edit")
}

// TestAdmissionRewritingManifestFieldDoesNotLoop: a policy that rewrites
// a label the manifest sets, on every create and update, wins; mirrorlet
// says so once (Event MutatedMirrorPod) and does not fight it: a bounded
// number of writes, none once settled, and none of the mirror itself when
// later events (a container restart) wake its reconcile.
func TestAdmissionRewritingManifestFieldDoesNotLoop(t *testing.T) {
	node := newNodeName("rewrite")
	installPolicy(t, "rewrite-"+node, node, "object.metadata.?labels.orValue({}).?tier.orValue('') != 'forced'",
		`[JSONPatch{op: "add", path: "/metadata/labels/tier", value: "forced"}]`,
		func(p *corev1.Pod) bool { return p.Labels["tier"] == "forced" })
	writes, counting := countPodWrites(t)
	a := startAgent(t, node, "", nil, counting)
	a.Write("web.yaml", podManifest("web", map[string]string{"tier": "a"}, "nginx:1.27"))
	m := a.WaitMirror("web", func(p *corev1.Pod) bool { return isSettled(p) && p.Labels["tier"] == "forced" })
	eventually(t, "a MutatedMirrorPod Event on the mirror", func() bool {
		var list eventsv1.EventList
		if err := k8s.List(context.Background(), &list, client.InNamespace("default")); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Regarding.Name == m.Name && e.Reason == "MutatedMirrorPod" {
				return true
			}
		}
		return false
	})
	checkNoWrites(t, writes, writeWindow, "after the mirror is Running")
	t.Logf("pod writes: %d %s", writes.Total(), writes)
	if writes.Total() > 6 {
		t.Errorf("%d pod writes (%s), want at most 6", writes.Total(), writes)
	}
	applies := writes.Count("PATCH pods")
	rp := a.WaitRunning("web", 1)
	if err := a.RT.Exit(rp.UID, "web", 1); err != nil {
		t.Fatal(err)
	}
	a.WaitMirror("web", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount == 1 && cs[0].State.Running != nil
	})
	if n := writes.Count("PATCH pods"); n != applies {
		t.Errorf("%d more writes of the mirror after a container restart (%s), want none: mirrorlet fights the policy",
			n-applies, writes)
	}
}

// checkNoWrites fails if mirrorlet writes a pod within d.
// isSettled reports whether a new mirror shows all it will: Running, and
// the hostIP of the Node. A mirror written before the Node's first status
// (mirrorlet registers the Node, then posts its addresses) gets its hostIP
// in one more status write.
func isSettled(p *corev1.Pod) bool { return isRunning(p) && p.Status.HostIP != "" }

func checkNoWrites(t *testing.T, writes *podWrites, d time.Duration, when string) {
	t.Helper()
	before, start := writes.Total(), time.Now()
	consistently(t, "no pod writes "+when, d, func() bool { return writes.Total() == before })
	t.Logf("pod writes in %s %s: %d", time.Since(start).Round(time.Second), when, writes.Total()-before)
}

func hasInjectedToleration(p *corev1.Pod) bool {
	for _, t := range p.Spec.Tolerations {
		if t.Key == "injected" {
			return true
		}
	}
	return false
}

// installTolerationPolicy installs a MutatingAdmissionPolicy that adds the
// toleration "injected" and the label injected-by=policy to every pod
// bound to node, on create and update, and waits until it is in effect.
func installTolerationPolicy(t *testing.T, node string) {
	t.Helper()
	installPolicy(t, "inject-"+node, node,
		"!object.spec.?tolerations.orValue([]).exists(t, t.?key.orValue('') == 'injected')", `[
			JSONPatch{op: "add", path: "/spec/tolerations/-",
				value: Object.spec.tolerations{key: "injected", operator: "Exists", effect: "NoSchedule"}},
			JSONPatch{op: "add", path: "/metadata/labels/injected-by", value: "policy"}
		]`,
		func(p *corev1.Pod) bool { return hasInjectedToleration(p) && p.Labels["injected-by"] == "policy" })
}

// installPolicy installs a MutatingAdmissionPolicy named name that applies
// jsonPatch to pods bound to node on create and update when condition
// holds, and waits until a dry-run pod comes back mutated.
func installPolicy(t *testing.T, name, node, condition, jsonPatch string, mutated func(*corev1.Pod) bool) {
	t.Helper()
	ctx := context.Background()
	policy := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				},
			}}},
			MatchConditions: []admissionregistrationv1.MatchCondition{
				{Name: "on-node", Expression: fmt.Sprintf("object.spec.?nodeName.orValue('') == '%s'", node)},
				{Name: "when", Expression: condition},
			},
			Mutations: []admissionregistrationv1.Mutation{{
				PatchType: admissionregistrationv1.PatchTypeJSONPatch,
				JSONPatch: &admissionregistrationv1.JSONPatch{Expression: jsonPatch},
			}},
			FailurePolicy:      ptrTo(admissionregistrationv1.Fail),
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
		},
	}
	binding := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: name},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, name, err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), o) })
	}
	waitMutation(t, node, mutated)
}

// waitMutation waits until a dry-run pod on node comes back mutated.
func waitMutation(t *testing.T, node string, mutated func(*corev1.Pod) bool) {
	t.Helper()
	eventually(t, "the mutation in effect", func() bool {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "probe-" + node, Namespace: "default", Labels: map[string]string{"probe": "1"}},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		}
		return k8s.Create(context.Background(), p, client.DryRunAll) == nil && mutated(p)
	})
}
