package podstate

import (
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/runtime"
)

func sample() State {
	t0 := time.Unix(1700000000, 0)
	return State{UID: "u", Message: "m",
		Pod: &runtime.Pod{UID: "u", SandboxID: "s", Ready: true, CreatedAt: t0,
			Containers: []runtime.Container{{ID: "c1", Name: "c", State: runtime.ContainerRunning, StartedAt: t0}}},
		Waiting: map[string]Waiting{"d": {Reason: "ContainerCreating"}},
		Probes:  map[string]Probe{"c1": {Started: true, Ready: true}},
	}
}

// counting returns a store whose subscriber counts notifications.
func counting() (*Store, *int) {
	s, n := NewStore(), new(int)
	s.Subscribe(func(types.NamespacedName) { *n++ })
	return s, n
}

var key = types.NamespacedName{Namespace: "default", Name: "p"}

func TestSetNotifiesOnlyChanges(t *testing.T) {
	s, n := counting()
	s.Set(key, sample())
	s.Set(key, sample()) // equal, in new maps and a new pod
	if *n != 1 {
		t.Fatalf("%d notifications for a state set twice, want 1", *n)
	}
	changes := map[string]func(st *State){
		"UID":                   func(st *State) { st.UID = "v" },
		"Message":               func(st *State) { st.Message = "" },
		"Pod":                   func(st *State) { st.Pod.Containers[0].State = runtime.ContainerExited },
		"no Pod":                func(st *State) { st.Pod = nil },
		"Waiting":               func(st *State) { st.Waiting["d"] = Waiting{Reason: "CrashLoopBackOff"} },
		"Probes":                func(st *State) { st.Probes["c1"] = Probe{Started: true} },
		"Probes nil, no prober": func(st *State) { st.Probes = nil },
		"Waiting empty":         func(st *State) { st.Waiting = map[string]Waiting{} },
	}
	covered := map[string]bool{}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			s, n := counting()
			s.Set(key, sample())
			st := sample()
			change(&st)
			for i := range reflect.TypeFor[State]().NumField() {
				f := reflect.TypeFor[State]().Field(i)
				if !reflect.DeepEqual(reflect.ValueOf(st).Field(i).Interface(), reflect.ValueOf(sample()).Field(i).Interface()) {
					covered[f.Name] = true
				}
			}
			s.Set(key, st)
			if *n != 2 {
				t.Errorf("%d notifications, want 2", *n)
			}
		})
	}
	for i := range reflect.TypeFor[State]().NumField() {
		if f := reflect.TypeFor[State]().Field(i); !covered[f.Name] {
			t.Errorf("field %s is not changed by this test: add a case", f.Name)
		}
	}
	s.Set(key, State{UID: "u"})
	s.Set(key, State{UID: "u", Waiting: map[string]Waiting{}, Probes: map[string]Probe{}})
	if *n != 3 { // nil Probes: no prober runs; empty: none has a result
		t.Errorf("nil maps replaced by empty ones: %d notifications, want 3", *n)
	}
}

// An unchanged Set (every worker resync of an idle pod) allocates nothing.
func TestUnchangedSetAllocatesNothing(t *testing.T) {
	s, n := counting()
	s.Set(key, sample())
	st := sample()
	if allocs := testing.AllocsPerRun(100, func() { s.Set(key, st) }); allocs != 0 || *n != 1 {
		t.Errorf("unchanged Set: %v allocations, %d notifications; want 0 and 1", allocs, *n)
	}
}
