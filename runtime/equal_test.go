package runtime

import (
	"reflect"
	"testing"
	"time"
)

func samplePod() Pod {
	t0 := time.Unix(1700000000, 0)
	grace := 30 * time.Second
	return Pod{UID: "u", Namespace: "ns", Name: "p", SandboxID: "s", Ready: true, IP: "10.0.0.1", CreatedAt: t0,
		Grace: &grace, Annotations: map[string]string{"a": "b"},
		Containers: []Container{{ID: "c1", Name: "c", Attempt: 1, State: ContainerRunning, CreatedAt: t0,
			StartedAt: t0.Add(time.Second), FinishedAt: t0.Add(2 * time.Second), ExitCode: 1, Reason: "r",
			Message: "m", Image: "i", ImageRef: "ir"}}}
}

// change sets v (a field of a copy) to a value other than its current one.
func change(t *testing.T, name string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint32:
		v.SetUint(v.Uint() + 1)
	case reflect.Struct: // time.Time
		v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Nanosecond)))
	case reflect.Pointer: // *time.Duration
		d := *v.Interface().(*time.Duration) + 1
		v.Set(reflect.ValueOf(&d))
	case reflect.Map:
		v.Set(reflect.ValueOf(map[string]string{"a": "c"}))
	default:
		t.Fatalf("field %s of kind %s: teach this test to change it", name, v.Kind())
	}
}

// TestEqualSeesEveryField changes each field of Pod and of Container in
// turn: a field added later and left out of Equal fails here.
func TestEqualSeesEveryField(t *testing.T) {
	base := samplePod()
	if p := samplePod(); !base.Equal(&p) || !PodsEqual([]Pod{base}, []Pod{p}) {
		t.Fatal("equal pods compare unequal")
	}
	pt := reflect.TypeFor[Pod]()
	for i := range pt.NumField() {
		f := pt.Field(i)
		if f.Name == "Containers" {
			continue
		}
		p := samplePod()
		change(t, f.Name, reflect.ValueOf(&p).Elem().Field(i))
		if base.Equal(&p) || p.Equal(&base) {
			t.Errorf("pods differing in %s compare equal", f.Name)
		}
	}
	ct := reflect.TypeFor[Container]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		p := samplePod()
		change(t, f.Name, reflect.ValueOf(&p.Containers[0]).Elem().Field(i))
		if base.Equal(&p) || PodsEqual([]Pod{base}, []Pod{p}) {
			t.Errorf("containers differing in %s compare equal", f.Name)
		}
	}
}

func TestEqualEdgeCases(t *testing.T) {
	a, b := samplePod(), samplePod()
	b.Grace, b.Annotations = nil, nil
	if a.Equal(&b) || b.Equal(&a) {
		t.Error("a nil Grace or Annotations compares equal to a set one")
	}
	b = samplePod()
	b.Containers = append(b.Containers, b.Containers[0])
	if a.Equal(&b) {
		t.Error("pods with different numbers of containers compare equal")
	}
	if (*Pod)(nil).Equal(&a) || !(*Pod)(nil).Equal(nil) {
		t.Error("nil pods")
	}
	if PodsEqual([]Pod{a}, nil) {
		t.Error("lists of different lengths compare equal")
	}
	// The same instant in another location or with a monotonic reading
	// is the same state.
	b = samplePod()
	b.CreatedAt = b.CreatedAt.UTC()
	if !a.Equal(&b) {
		t.Error("the same instant in UTC compares unequal")
	}
}

func TestEqualAllocatesNothing(t *testing.T) {
	a, b := []Pod{samplePod()}, []Pod{samplePod()}
	if n := testing.AllocsPerRun(100, func() { PodsEqual(a, b) }); n != 0 {
		t.Errorf("PodsEqual allocates %v times, want 0", n)
	}
}
