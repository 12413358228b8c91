package integration

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/controllers/node"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
	"github.com/mirrorlet/mirrorlet/test/agenttest"
)

func getNode(name string) (*corev1.Node, error) {
	n := &corev1.Node{}
	return n, k8s.Get(context.Background(), types.NamespacedName{Name: name}, n)
}

func TestNodeRegisteredWithLease(t *testing.T) {
	a := startAgent(t, newNodeName("register"), "", nil)
	var n *corev1.Node
	eventually(t, "node registered and Ready", func() bool {
		var err error
		n, err = getNode(a.Node)
		return err == nil && len(n.Status.Conditions) == 1 &&
			n.Status.Conditions[0].Type == corev1.NodeReady && n.Status.Conditions[0].Status == corev1.ConditionTrue
	})
	wantLabels := map[string]string{"kubernetes.io/hostname": a.Node, "kubernetes.io/os": "linux", node.LabelAgent: "mirrorlet"}
	for k, v := range wantLabels {
		if n.Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, n.Labels[k], v)
		}
	}
	// (The API server adds node.kubernetes.io/not-ready; a node lifecycle
	// controller would remove it once Ready.)
	if !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool {
		return t.Key == node.TaintStatic && t.Effect == corev1.TaintEffectNoSchedule
	}) {
		t.Errorf("taints %+v, want %s:NoSchedule", n.Spec.Taints, node.TaintStatic)
	}
	if !strings.HasPrefix(n.Status.NodeInfo.KubeletVersion, "mirrorlet-") || n.Status.NodeInfo.ContainerRuntimeVersion == "" {
		t.Errorf("nodeInfo %+v does not say it is mirrorlet", n.Status.NodeInfo)
	}
	lease := &coordinationv1.Lease{}
	eventually(t, "node lease", func() bool {
		return k8s.Get(context.Background(), types.NamespacedName{Namespace: "kube-node-lease", Name: a.Node}, lease) == nil
	})
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); h != node.HolderIdentity(a.Node) {
		t.Errorf("lease holder %q", h)
	}
	if len(lease.OwnerReferences) != 1 || lease.OwnerReferences[0].UID != n.UID {
		t.Errorf("lease owners %+v, want the Node", lease.OwnerReferences)
	}
}

func TestNodeRegisteredAgainAfterDelete(t *testing.T) {
	a := startAgent(t, newNodeName("renode"), "", nil)
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	a.WaitMirror("web", isRunning)
	n, err := getNode(a.Node)
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node registered again", func() bool {
		got, err := getNode(a.Node)
		return err == nil && got.UID != n.UID
	})
	newNode, _ := getNode(a.Node)
	// Mirrors follow the new Node UID (a garbage collector would delete
	// mirrors owned by the old one).
	a.WaitMirror("web", func(p *corev1.Pod) bool {
		return len(p.OwnerReferences) == 1 && p.OwnerReferences[0].UID == newNode.UID
	})
}

func TestKubeletNodeRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, nodeName string)
		why   string
	}{
		{"kubeletVersion", func(t *testing.T, nodeName string) {
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
			if err := k8s.Create(context.Background(), n); err != nil {
				t.Fatal(err)
			}
			n.Status.NodeInfo.KubeletVersion = "v1.37.2"
			if err := k8s.Status().Update(context.Background(), n); err != nil {
				t.Fatal(err)
			}
		}, "kubeletVersion"},
		{"lease", func(t *testing.T, nodeName string) {
			if err := k8s.Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}); err != nil {
				t.Fatal(err)
			}
			now := metav1.NewMicroTime(time.Now())
			lease := &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: nodeName, Namespace: "kube-node-lease"},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(nodeName), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now},
			}
			if err := k8s.Create(context.Background(), lease); err != nil {
				t.Fatal(err)
			}
		}, "Lease"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodeName := newNodeName("kubelet-" + strings.ToLower(tc.name))
			tc.setup(t, nodeName)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			err := app.Run(ctx, app.Options{
				RestConfig: cfg, NodeName: nodeName, Runtime: fake.New(nil), PodManifestPath: t.TempDir(),
				HealthzBindAddress: "0", MetricsBindAddress: "0", Log: zap.New(zap.WriteTo(&agenttest.LogBuffer{})),
			})
			if !errors.Is(err, node.ErrKubeletNode) {
				t.Fatalf("Run returned %v, want an error wrapping ErrKubeletNode", err)
			}
			for _, want := range []string{nodeName, tc.why, "--node-name", "orphans"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			n, _ := getNode(nodeName)
			if n.Labels[node.LabelAgent] != "" {
				t.Errorf("mirrorlet touched the kubelet's node")
			}
		})
	}
}

func TestNodeSideRunsWithoutAPIServer(t *testing.T) {
	rt := fake.New(nil)
	unreachable := *cfg
	unreachable.Host = "https://127.0.0.1:1"
	a := agenttest.Start(t, newNodeName("offline"), agenttest.Config{RestConfig: &unreachable, Reader: k8s, Runtime: rt})
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	a.WaitRunning("web", 1)
	a.Stop() // fails the test if Run returned an error
	if _, err := getNode(a.Node); !apierrors.IsNotFound(err) {
		t.Errorf("node %s exists; the API server was never reachable", a.Node)
	}
}

func TestSpecChangeReplacesPod(t *testing.T) {
	a := startAgent(t, newNodeName("replace"), "", nil)
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	old := a.WaitMirror("web", isRunning)
	oldPod := a.WaitRunning("web", 1)

	a.Write("web.yaml", podManifest("web", nil, "nginx:1.28"))
	m := a.WaitMirror("web", func(p *corev1.Pod) bool {
		return p.UID != old.UID && p.Spec.Containers[0].Image == "nginx:1.28" && isRunning(p)
	})
	newPod := a.WaitRunning("web", 1)
	if newPod.UID == oldPod.UID || string(newPod.UID) != m.Annotations["kubernetes.io/config.mirror"] {
		t.Errorf("runtime pod UID %s after the change (was %s), want the new hash", newPod.UID, oldPod.UID)
	}
	if len(a.RT.Pods()) != 1 {
		t.Errorf("runtime runs %d pods, want only the new one", len(a.RT.Pods()))
	}
}

func TestOnlyManifestFilesAreRead(t *testing.T) {
	a := startAgent(t, newNodeName("files"), "", nil)
	a.Write(".hidden.yaml", podManifest("hidden", nil, "nginx:1.27"))
	a.Write("web.yaml.bak", podManifest("bak", nil, "nginx:1.27"))
	a.Write(".web.yaml.swp", podManifest("swp", nil, "nginx:1.27"))
	a.Write("notes.txt", podManifest("txt", nil, "nginx:1.27"))
	a.Write("yml.yml", podManifest("yml", nil, "nginx:1.27"))
	a.Write("json.json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"json"},"spec":{"containers":[{"name":"c","image":"nginx:1.27"}]}}`)
	a.WaitMirror("yml", nil)
	a.WaitMirror("json", nil)
	consistently(t, "only the .yml and .json pods run", time.Second, func() bool {
		var pods corev1.PodList
		if err := k8s.List(context.Background(), &pods, client.MatchingFields{"spec.nodeName": a.Node}); err != nil {
			return false
		}
		return len(pods.Items) == 2 && len(a.RT.Pods()) == 2
	})
}

func TestBadEditKeepsLastGoodPodRunning(t *testing.T) {
	a := startAgent(t, newNodeName("badedit"), "", nil)
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	m := a.WaitMirror("web", isRunning)
	rp := a.WaitRunning("web", 1)

	a.Write("web.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    imagee: typo\n")
	a.WaitMirror("web", func(p *corev1.Pod) bool {
		c := condition(p, "mirrorlet.io/ManifestValid")
		return c != nil && c.Status == corev1.ConditionFalse && strings.Contains(c.Message, "web.yaml") &&
			strings.Contains(c.Message, "imagee")
	})
	if p, ok := a.RuntimePod("web"); !ok || p.SandboxID != rp.SandboxID {
		t.Fatalf("the running pod was stopped by a bad edit")
	}
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	got := a.WaitMirror("web", func(p *corev1.Pod) bool {
		c := condition(p, "mirrorlet.io/ManifestValid")
		return c != nil && c.Status == corev1.ConditionTrue
	})
	if got.UID != m.UID {
		t.Errorf("mirror recreated by a bad edit and its fix")
	}
}

func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func withRootDir(dir string) agentOption {
	return func(o *app.Options) { o.RootDir = dir }
}

// An invalid edit made while mirrorlet is stopped: after the restart the
// last good pod still runs, unrestarted, with the error on its mirror —
// exactly as without the restart.
func TestBadEditWhileStoppedKeepsLastGoodPodAfterRestart(t *testing.T) {
	node, root, rt := newNodeName("lkg"), t.TempDir(), fake.New(nil)
	a := startAgent(t, node, "", rt, withRootDir(root))
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	m := a.WaitMirror("web", isRunning)
	rp := a.WaitRunning("web", 1)
	starts := rt.Starts(rp.UID)
	a.Stop()

	a.Write("web.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    imagee: typo\n")
	b := startAgent(t, node, a.Dir, rt, withRootDir(root))
	b.WaitMirror("web", func(p *corev1.Pod) bool {
		c := condition(p, "mirrorlet.io/ManifestValid")
		return c != nil && c.Status == corev1.ConditionFalse && strings.Contains(c.Message, "imagee")
	})
	consistently(t, "the last good pod keeps running, unrestarted", 2*time.Second, func() bool {
		p, ok := b.RuntimePod("web")
		return ok && p.SandboxID == rp.SandboxID && rt.Starts(rp.UID) == starts && len(rt.Pods()) == 1
	})
	if got := b.WaitMirror("web", nil); got.UID != m.UID {
		t.Errorf("mirror recreated across the restart (UID %s -> %s)", m.UID, got.UID)
	}
}
