package pleg

import (
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

func listed(t0 time.Time) []mruntime.Pod {
	return []mruntime.Pod{{UID: "u", Namespace: "default", Name: "p", SandboxID: "s1", Ready: true, CreatedAt: t0,
		Annotations: map[string]string{"a": "b"},
		Containers: []mruntime.Container{
			{ID: "c2", Name: "c", Attempt: 1, State: mruntime.ContainerRunning, CreatedAt: t0, StartedAt: t0},
			{ID: "c1", Name: "c", Attempt: 0, State: mruntime.ContainerExited, CreatedAt: t0, StartedAt: t0,
				FinishedAt: t0, ExitCode: 1},
		}}}
}

func clonePods(pods []mruntime.Pod) []mruntime.Pod {
	out := slices.Clone(pods)
	for i := range out {
		out[i].Containers = slices.Clone(pods[i].Containers)
	}
	return out
}

// A relist compares each pod's sandboxes and containers field by field: an
// unchanged listing emits nothing (only the refresh time moves), and a
// change of any one field emits the pod's event.
func TestRelistCompareEmitsOnlyChanges(t *testing.T) {
	c, err := New(Config{Runtime: fake.New(nil), Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	if evs := c.setLocked("u", listed(t0), t0, nil); len(evs) != 1 {
		t.Fatalf("first listing: events %v, want one", evs)
	}
	t1 := t0.Add(time.Second)
	if evs := c.setLocked("u", listed(t0), t1, nil); len(evs) != 0 {
		t.Fatalf("unchanged listing: events %v, want none", evs)
	}
	if got := c.Get("u").Refreshed; !got.Equal(t1) {
		t.Errorf("refreshed %v after an unchanged listing, want %v", got, t1)
	}
	changes := map[string]func(p *mruntime.Pod){
		"sandbox not ready":   func(p *mruntime.Pod) { p.Ready = false },
		"container state":     func(p *mruntime.Pod) { p.Containers[0].State = mruntime.ContainerExited },
		"container finished":  func(p *mruntime.Pod) { p.Containers[1].FinishedAt = t1 },
		"container exit code": func(p *mruntime.Pod) { p.Containers[1].ExitCode = 2 },
		"new attempt": func(p *mruntime.Pod) {
			p.Containers = append(p.Containers, mruntime.Container{ID: "c3", Name: "c", Attempt: 2})
		},
		"annotation": func(p *mruntime.Pod) { p.Annotations = map[string]string{"a": "c"} },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			c.setLocked("u", listed(t0), t0, nil)
			pods := listed(t0)
			change(&pods[0])
			if evs := c.setLocked("u", pods, t1, nil); len(evs) != 1 || evs[0].UID != "u" {
				t.Errorf("events %v, want u's", evs)
			}
			if got := c.Get("u").Pods; !mruntime.PodsEqual(got, pods) {
				t.Errorf("cache holds %+v, want the new listing", got)
			}
		})
	}
	// The same containers listed in another order are the same state.
	c.setLocked("u", listed(t0), t0, nil)
	pods := listed(t0)
	slices.Reverse(pods[0].Containers)
	if evs := c.setLocked("u", pods, t1, nil); len(evs) != 0 {
		t.Errorf("containers listed in another order: events %v, want none", evs)
	}
}

// Storing an unchanged listing allocates nothing: at 1,000 idle pods a
// relist is one compare per pod.
func TestUnchangedRelistAllocatesNothing(t *testing.T) {
	c, err := New(Config{Runtime: fake.New(nil), Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	c.setLocked("u", listed(t0), t0, nil)
	again := clonePods(listed(t0))
	var evs []Event
	allocs := testing.AllocsPerRun(100, func() { evs = c.setLocked(types.UID("u"), again, t0, evs[:0]) })
	if allocs != 0 || len(evs) != 0 {
		t.Errorf("unchanged listing: %v allocations, events %v; want 0 and none", allocs, evs)
	}
}
