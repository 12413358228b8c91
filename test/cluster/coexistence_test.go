package cluster

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/controllers/node"
	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// churnWindow is how long both agents churn side by side.
const churnWindow = 60 * time.Second

// TestNextToAKubelet runs a real kubelet as node h1 (its static pod, and a
// plain pod bound to h1) and mirrorlet as node h1-static on the same host,
// each with its own containerd and pod log folder, as deploy/ sets them
// up. Over a window of churn on both sides (static pods added and removed,
// plain pods created and deleted, mirrors deleted) neither touches the
// other's pods, mirrors, sandboxes, containers or logs; the steady pods of
// both never restart. mirrorlet started with the kubelet's node name
// refuses to run and says why. (issue 13 point 1)
func TestNextToAKubelet(t *testing.T) {
	const host = "h1"
	k := startKubelet(t, host)
	k.writeManifest(t, "kstatic.yaml", webPod("kstatic"))
	boundPod(t, "plain-"+host, host)
	n := startNode(t, host+"-static", false)
	n.WriteManifest("mstatic.yaml", webPod("mstatic"))
	steady := []string{"kstatic-" + host, "plain-" + host, "mstatic-" + n.Name()}
	before := waitPodsRunning(t, 3*time.Minute, steady...)
	ctrsBefore := allContainers(t, k)
	logsBefore := podLogDirs(t, steady, k.logs, n.Logs)

	deleted := churn(t, k, n)
	waitKubeletLogGC(t, deleted)

	after := waitPodsRunning(t, time.Minute, steady...)
	for _, name := range steady {
		if !maps.Equal(containers(t, before[name]), containers(t, after[name])) {
			t.Errorf("%s: containers %v before the churn, %v after", name, containers(t, before[name]), containers(t, after[name]))
		}
	}
	ctrsAfter := allContainers(t, k)
	for key, id := range ctrsBefore {
		if ctrsAfter[key] != id {
			t.Errorf("container %s was %s before the churn, %q after", key, id, ctrsAfter[key])
		}
	}
	for dir := range logsBefore {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("log folder of a steady pod gone: %v", err)
		}
	}
	checkRuntimesApart(t, k, n.Name())
	checkWritesApart(t, host, n.Name())
	checkRefusesKubeletNode(t, host, "kstatic-"+host)
}

func (k *kubelet) writeManifest(t *testing.T, file string, pod *corev1.Pod) {
	t.Helper()
	writeFileAtomic(t, filepath.Join(k.manifests, file), pod)
}

// waitPodsRunning waits until the pods (namespace default) are Running and
// ready, and returns them by name.
func waitPodsRunning(t *testing.T, timeout time.Duration, names ...string) map[string]*corev1.Pod {
	t.Helper()
	out := map[string]*corev1.Pod{}
	nodetest.Eventually(t, timeout, fmt.Sprintf("pods %v Running", names), func() bool {
		for _, name := range names {
			p := getPod(t, "default", name)
			if !running(p) {
				return false
			}
			out[name] = p
		}
		return true
	})
	return out
}

// churn, every 2 s for churnWindow, on both sides: a static pod added or
// removed, a plain pod created on the kubelet's node and the previous one
// deleted, and a mirror deleted by an admin (its agent makes it again). It
// returns the log folders of the plain pods it deleted.
func churn(t *testing.T, k *kubelet, n *nodetest.Mirrorlet) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), churnWindow)
	defer cancel()
	i := 0
	var plain *corev1.Pod
	var deleted []string
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		i++
		if i%2 == 1 {
			k.writeManifest(t, "kchurn.yaml", webPod("kchurn"))
			n.WriteManifest("mchurn.yaml", webPod("mchurn"))
		} else {
			removeFile(t, filepath.Join(k.manifests, "kchurn.yaml"))
			n.RemoveManifest("mchurn.yaml")
		}
		if plain != nil {
			dirs, _ := filepath.Glob(filepath.Join(k.logs, "default_"+plain.Name+"_*"))
			deleted = append(deleted, dirs...)
			_ = admin.Delete(ctx, plain)
		}
		plain = webPod(fmt.Sprintf("plain-churn-%d", i))
		plain.Namespace, plain.Spec.NodeName = "default", k.name
		if err := admin.Create(ctx, plain); err != nil {
			t.Logf("churn: creating %s: %v", plain.Name, err)
		}
		for _, m := range []string{"kstatic-" + k.name, "mstatic-" + n.Name()} {
			_ = admin.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: m}})
		}
	}, 2*time.Second)
	t.Logf("churn: %d rounds in %s", i, churnWindow)
	return deleted
}

// waitKubeletLogGC waits until the kubelet's container GC (every minute)
// has removed the log folders of deleted pods: from then on, a log folder
// of mirrorlet's that the kubelet would remove (a shared --pod-logs-dir)
// is gone too.
func waitKubeletLogGC(t *testing.T, deleted []string) {
	t.Helper()
	if len(deleted) == 0 {
		t.Fatal("no log folder of a deleted plain pod: cannot tell when the kubelet's log GC has run")
	}
	nodetest.Eventually(t, 2*time.Minute, "the kubelet's GC removing the log folders of deleted pods", func() bool {
		for _, d := range deleted {
			if _, err := os.Stat(d); err == nil {
				return false
			}
		}
		return true
	})
}

// allContainers returns the running containers of both containerds.
func allContainers(t *testing.T, k *kubelet) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range []*nodetest.Containerd{k.ctd, ctd} {
		ctrs, err := c.RunningContainers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(out, ctrs)
	}
	return out
}

// podLogDirs returns the log folders of pods (<ns>_<pod>_<uid>) in dirs,
// failing the test when one has none.
func podLogDirs(t *testing.T, pods []string, dirs ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, pod := range pods {
		var found []string
		for _, dir := range dirs {
			matches, _ := filepath.Glob(filepath.Join(dir, "default_"+pod+"_*"))
			found = append(found, matches...)
		}
		if len(found) == 0 {
			t.Fatalf("no log folder of %s in %v", pod, dirs)
		}
		for _, f := range found {
			out[f] = true
		}
	}
	return out
}

// checkRuntimesApart checks that each containerd holds only its agent's
// pods.
func checkRuntimesApart(t *testing.T, k *kubelet, static string) {
	t.Helper()
	for _, c := range []struct {
		ctd  *nodetest.Containerd
		mine func(string) bool
	}{
		{k.ctd, func(pod string) bool { return !strings.HasSuffix(pod, "-"+static) }},
		{ctd, func(pod string) bool { return strings.HasSuffix(pod, "-"+static) }},
	} {
		sbs, err := c.ctd.Sandboxes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for pod := range sbs {
			if !c.mine(pod) {
				t.Errorf("containerd %s runs %s, a pod of the other agent", c.ctd.Endpoint, pod)
			}
		}
	}
}

// checkWritesApart checks in the audit log that the kubelet wrote no pod
// of mirrorlet's node and mirrorlet none of the kubelet's (mirrors are
// named <pod>-<node>; plain pods on the kubelet's node are named plain-*).
func checkWritesApart(t *testing.T, kubeletNode, static string) {
	t.Helper()
	count := map[string]int{}
	for _, e := range auditEvents(t) {
		if e.ObjectRef.Resource != "pods" {
			continue
		}
		ours := strings.HasSuffix(e.ObjectRef.Name, "-"+static)
		switch e.User.Username {
		case "system:node:" + kubeletNode:
			count["kubelet"]++
			if ours {
				t.Errorf("kubelet %s: %s pods/%s %s (code %d)", kubeletNode, e.Verb, e.ObjectRef.Subresource, e.ObjectRef.Name, e.ResponseStatus.Code)
			}
		case "mirrorlet:node:" + static:
			count["mirrorlet"]++
			if !ours {
				t.Errorf("mirrorlet %s: %s pods/%s %s (code %d)", static, e.Verb, e.ObjectRef.Subresource, e.ObjectRef.Name, e.ResponseStatus.Code)
			}
		}
	}
	t.Logf("pod writes in the audit log: %v", count)
	if count["kubelet"] == 0 || count["mirrorlet"] == 0 {
		t.Errorf("pod writes %v: want both agents' own writes in the audit log", count)
	}
}

// checkRefusesKubeletNode starts mirrorlet with the kubelet's node name (as
// identity mirrorlet:node:<it>): it must exit with its message, having
// written nothing at all (no pod, Node or Lease: the audit log says who
// wrote what), and the kubelet's mirror stays as it is unless someone
// other than mirrorlet replaced it (logged, with who deleted it).
//
// The mirror compared is read once the kubelet is done with it (Running,
// not being deleted), not right after the churn: the churn deletes
// kstatic-<host> gracefully every 2 s, and the kubelet does not replace a
// gracefully deleted mirror at once (three runs: 30 deletes by the admin,
// 1 by the kubelet): it stays Running with a deletionTimestamp until the
// kubelet's periodic pod sync replaces it, which may fall while this check
// runs. Comparing that mirror's UID failed the test once for the kubelet's
// own replacement. A new UID is mirrorlet's doing only if the audit log
// shows a write of mirrorlet's.
func checkRefusesKubeletNode(t *testing.T, kubeletNode, mirrorName string) {
	t.Helper()
	identity := "mirrorlet:node:" + kubeletNode
	kc, err := userKubeconfig(identity, "mirrorlet:nodes")
	if err != nil {
		t.Fatal(err)
	}
	mirror := waitMirrorSettled(t, mirrorName)
	events := auditEvents(t)
	mark := len(events)
	t.Logf("the kubelet's mirror %s so far deleted by (user: times): %v", mirrorName, tally(deletersIn(events, "pods", "default", mirrorName)))
	dir := t.TempDir()
	p, err := nodetest.StartProcess("mirrorlet "+kubeletNode, filepath.Join(dir, "mirrorlet.log"), mirrorlet,
		"--kubeconfig", kc, "--node-name", kubeletNode, "--pod-manifest-path", dir,
		"--container-runtime-endpoint", ctd.Endpoint, "--root-dir", filepath.Join(dir, "root"),
		"--pod-logs-dir", filepath.Join(dir, "logs"), "--port", "0",
		"--healthz-bind-address", "0", "--metrics-bind-address", "0")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(30 * time.Second):
		_ = p.Stop(9)
		t.Fatalf("mirrorlet with the kubelet's node name %s still runs after 30s:\n%s", kubeletNode, p.Tail(20))
	}
	log := p.Tail(20)
	if p.ExitCode() == 0 || !strings.Contains(log, node.ErrKubeletNode.Error()) || !strings.Contains(log, "--node-name") {
		t.Errorf("mirrorlet with the kubelet's node name: exit code %d, want non-zero and a message naming --node-name:\n%s", p.ExitCode(), log)
	}
	t.Logf("mirrorlet --node-name %s refuses:\n%s", kubeletNode, strings.Join(nodetest.Lines(log, "kubelet"), "\n"))
	since := auditEvents(t)[mark:]
	for _, e := range since {
		if e.User.Username == identity {
			t.Errorf("refused mirrorlet %s wrote: %s %s/%s %s (code %d)", identity, e.Verb, e.ObjectRef.Resource,
				e.ObjectRef.Subresource, e.ObjectRef.Name, e.ResponseStatus.Code)
		}
	}
	m := &corev1.Pod{}
	if err := admin.Get(t.Context(), client.ObjectKeyFromObject(mirror), m); err != nil {
		t.Errorf("the kubelet's mirror %s after mirrorlet was refused: %v", mirror.Name, err)
	} else if m.UID != mirror.UID {
		// Not mirrorlet's doing when it wrote nothing (checked above):
		// say who replaced it.
		t.Logf("the kubelet's mirror %s was replaced (uid %s → %s) while mirrorlet was refused; deleted by %v",
			mirror.Name, mirror.UID, m.UID, deletersIn(since, "pods", "default", mirror.Name))
	}
}

// waitMirrorSettled waits until the kubelet's mirror name is Running and
// not being deleted, and returns it.
func waitMirrorSettled(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	start := time.Now()
	first := getPod(t, "default", name)
	var mirror *corev1.Pod
	nodetest.Eventually(t, 2*time.Minute, "the kubelet's mirror "+name+" Running and not being deleted", func() bool {
		mirror = getPod(t, "default", name)
		return running(mirror) && mirror.DeletionTimestamp == nil
	})
	if first != nil && first.UID != mirror.UID {
		t.Logf("the kubelet's mirror %s was being deleted (since %s) after the churn; the kubelet replaced it %s later (uid %s → %s)",
			name, first.DeletionTimestamp, time.Since(start).Round(time.Second), first.UID, mirror.UID)
	}
	return mirror
}

// tally counts the times each string occurs.
func tally(ss []string) map[string]int {
	out := map[string]int{}
	for _, s := range ss {
		out[s]++
	}
	return out
}
