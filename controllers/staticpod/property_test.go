package staticpod

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

var policies = []string{"Always", "OnFailure", "Never"}

// world drives an engine through random desired changes and runtime events.
type world struct {
	f     *fixture
	pods  map[string]*manifest.StaticPod // desired, by name
	maxes map[string]uint32              // highest attempt seen, by uid/container
	// exited holds uid/container of Never pods seen exited, with their
	// attempt count then.
	exited map[string]int
	// events counts runtime events that took effect (exits, lost sandboxes).
	events int
}

func (w *world) manifest(name string, variant byte) *manifest.StaticPod {
	policy := policies[int(variant)%len(policies)]
	init := ""
	if variant%2 == 1 {
		init = fmt.Sprintf("  initContainers:\n  - {name: init, image: \"img-%d\"}\n", variant%4)
	}
	y := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  restartPolicy: %s
%s  containers:
  - {name: a, image: "img-%d"}
  - {name: b, image: "img-%d"}
`, name, policy, init, variant%3, variant%4)
	return w.f.load(y)
}

func (w *world) publish() {
	snap := desired.Snapshot{}
	for _, sp := range w.pods {
		snap.Pods = append(snap.Pods, sp)
	}
	w.f.set.Update(manifest.SourceFile, snap)
}

func (w *world) uidOf(name string) types.UID {
	for _, p := range w.f.rt.Pods() {
		if p.Name == name+"-n1" && p.Ready {
			return p.UID
		}
	}
	return ""
}

// apply runs one operation coded by op and arg.
func (w *world) apply(op, arg byte) {
	names := []string{"p0", "p1", "p2"}
	name := names[int(arg)%len(names)]
	rt := w.f.rt
	switch op % 8 {
	case 0, 1:
		sp := w.manifest(name, arg/3)
		if old, ok := w.pods[name]; ok && old.Pod.UID != sp.Pod.UID {
			w.forget(old.Pod.UID)
		}
		w.pods[name] = sp
		w.publish()
	case 2:
		if old, ok := w.pods[name]; ok {
			w.forget(old.Pod.UID)
		}
		delete(w.pods, name)
		w.publish()
	case 3:
		if uid := w.uidOf(name); uid != "" && rt.Exit(uid, []string{"init", "a", "b"}[int(arg/3)%3], int32(arg%2)) == nil {
			w.events++
		}
	case 4:
		if uid := w.uidOf(name); uid != "" && rt.KillSandbox(uid) == nil {
			w.events++
		}
	case 5:
		if arg%16 < 8 {
			rt.SetStartFails(fmt.Sprintf("img-%d", arg%4), arg%8 < 4)
		} else {
			rt.SetCreateFails(fmt.Sprintf("img-%d", arg%4), arg%8 < 4)
		}
	case 6:
		rt.LeaveCreatedOnce(fmt.Sprintf("img-%d", arg%4))
	case 7:
		w.f.clock.Step(time.Duration(arg) * 5 * time.Second)
	}
}

// forget drops what was seen of a pod version that goes: if it comes back,
// it is a new pod, counting from 0.
func (w *world) forget(uid types.UID) {
	for k := range w.maxes {
		if strings.HasPrefix(k, string(uid)+"/") {
			delete(w.maxes, k)
			delete(w.exited, k)
		}
	}
}

// settle syncs every worker until none acts.
func (w *world) settle() error {
	for range 30 {
		acted := false
		w.f.e.cfg.Cache.Relist(w.f.t.Context())
		keys := w.f.e.cfg.Cache.Keys()
		for _, sp := range w.f.set.List() {
			keys = append(keys, sp.Key())
		}
		for k := range w.f.workers {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b types.NamespacedName) int { return compareKeys(a, b) })
		keys = slices.Compact(keys)
		for _, k := range keys {
			res := w.f.syncKeyNoFail(k)
			acted = acted || res.acted
		}
		if !acted {
			return nil
		}
	}
	return fmt.Errorf("never settled")
}

func compareKeys(a, b types.NamespacedName) int {
	switch {
	case a.String() < b.String():
		return -1
	case a.String() > b.String():
		return 1
	}
	return 0
}

// check verifies the invariants after a settled sync.
func (w *world) check() error {
	desiredUIDs := map[types.UID]bool{}
	for _, sp := range w.pods {
		desiredUIDs[sp.Pod.UID] = true
	}
	ready := map[types.UID]int{}
	// Restart counts are those of each pod's newest sandbox: an older, dead
	// one is kept only for its containers' last states.
	newest := map[types.UID]mruntime.Pod{}
	for _, p := range w.f.rt.Pods() {
		if n, ok := newest[p.UID]; !ok || p.CreatedAt.After(n.CreatedAt) {
			newest[p.UID] = p
		}
	}
	for _, p := range w.f.rt.Pods() {
		if p.Ready {
			ready[p.UID]++
		}
		if ready[p.UID] > 1 {
			return fmt.Errorf("two ready sandboxes for pod %s", p.UID)
		}
		for _, c := range p.Containers {
			if c.State == mruntime.ContainerRunning && !desiredUIDs[p.UID] {
				return fmt.Errorf("container %s of a pod that is not desired (%s) runs", c.Name, p.Name)
			}
			if p.SandboxID != newest[p.UID].SandboxID {
				continue
			}
			if err := w.checkAttempts(&p, &c); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *world) checkAttempts(p *mruntime.Pod, c *mruntime.Container) error {
	k := string(p.UID) + "/" + c.Name
	latest := p.Latest(c.Name)
	if c.ID != latest.ID {
		return nil
	}
	if max, ok := w.maxes[k]; ok && latest.Attempt < max {
		return fmt.Errorf("restart count of %s/%s went down from %d to %d", p.Name, c.Name, max, latest.Attempt)
	}
	w.maxes[k] = latest.Attempt
	if !w.never(p.UID) {
		return nil
	}
	n := 0
	for _, o := range p.Containers {
		if o.Name == c.Name {
			n++
		}
	}
	if was, ok := w.exited[k]; ok && n > was {
		return fmt.Errorf("container %s of Never pod %s restarted after it exited", c.Name, p.Name)
	}
	if latest.State == mruntime.ContainerExited && latest.Reason != "" {
		w.exited[k] = n
	}
	return nil
}

func (w *world) never(uid types.UID) bool {
	for _, sp := range w.pods {
		if sp.Pod.UID == uid {
			return sp.Pod.Spec.RestartPolicy == "Never"
		}
	}
	return false
}

func (f *fixture) syncKeyNoFail(key types.NamespacedName) result {
	w, ok := f.workers[key]
	if !ok {
		w = newWorker(f.e, key)
		f.workers[key] = w
	}
	res, _ := w.sync(f.t.Context())
	if res.done {
		delete(f.workers, key)
	}
	return res
}

// TestStateMachineProperties drives random sequences of desired changes and
// runtime events and checks after each settled sync: never two ready
// sandboxes for one pod UID, no running container of a pod not desired,
// restart counts never decrease, and Never pods are not restarted.
func TestStateMachineProperties(t *testing.T) {
	events := 0
	prop := func(ops []byte) bool {
		n, err := runOps(t, ops)
		events += n
		if err != nil {
			t.Log(err)
		}
		return err == nil
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 500}); err != nil {
		t.Fatal(err)
	}
	if events < 100 {
		t.Fatalf("only %d runtime events took effect in 500 runs: the test does not exercise the state machine", events)
	}
	t.Logf("%d runtime events (container exits, lost sandboxes) took effect", events)
}

// runOps applies ops (op, arg pairs) to a fresh world, checking the
// invariants after each settled sync; it returns how many runtime events
// took effect.
func runOps(t *testing.T, ops []byte) (int, error) {
	w := &world{f: newFixture(t, ""), pods: map[string]*manifest.StaticPod{},
		maxes: map[string]uint32{}, exited: map[string]int{}}
	for i := 0; i+1 < len(ops); i += 2 {
		w.apply(ops[i], ops[i+1])
		if err := w.settle(); err != nil {
			return w.events, fmt.Errorf("step %d (op %d arg %d): %w", i/2, ops[i], ops[i+1], err)
		}
		if err := w.check(); err != nil {
			return w.events, fmt.Errorf("step %d (op %d arg %d): %w", i/2, ops[i], ops[i+1], err)
		}
	}
	return w.events, nil
}

// TestStateMachineFoundInputs replays inputs the property test once failed
// on.
func TestStateMachineFoundInputs(t *testing.T) {
	for name, ops := range map[string][]byte{
		// A container's attempt left Created was removed before its next
		// create, which failed: its restart count went from 1 back to 0.
		"stale attempt removed before a failed create": {0xfd, 0x70, 0x39, 0x54, 0x76, 0x58, 0xb8, 0x4a, 0x55,
			0xac, 0x5, 0xba, 0x8d, 0x59, 0xc0, 0x1c, 0x98, 0x4f, 0x9b, 0x3, 0x7b, 0x22, 0x16, 0xe1, 0x13, 0xa3,
			0x3, 0xcd, 0x65, 0x19, 0x2e, 0xb3, 0x6f, 0x1c, 0x6, 0x13, 0x37, 0xd8, 0x6e, 0x50, 0x2, 0x27, 0x5e},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := runOps(t, ops); err != nil {
				t.Fatal(err)
			}
		})
	}
}
