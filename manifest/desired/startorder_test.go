package desired

import (
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// orderedPod is a static pod of file "dir/NAME.yaml" that starts after the
// pods in after ("" for none).
func orderedPod(t *testing.T, name, after string) *manifest.StaticPod {
	t.Helper()
	data := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n"
	if after != "" {
		data += "  annotations:\n    mirrorlet.io/after: " + after + "\n"
	}
	data += "spec:\n  containers:\n  - name: c\n    image: i:1\n"
	sp, err := manifest.Load([]byte(data), manifest.Identity{NodeName: "n1", Source: manifest.SourceFile,
		Origin: "dir/" + name + ".yaml", Seen: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "default", Name: name + "-n1"}
}

func TestStartOrderGraph(t *testing.T) {
	type pod struct{ name, after string }
	for _, tc := range []struct {
		name string
		pods []pod
		// after: what each pod waits for (pods not listed wait for none).
		after map[string][]string
		// problems: substrings of each pod's problems, in order.
		problems map[string][]string
	}{
		{name: "chain", pods: []pod{{"etcd", ""}, {"apiserver", "etcd"}, {"scheduler", "apiserver, etcd"}},
			after: map[string][]string{"apiserver": {"etcd"}, "scheduler": {"apiserver", "etcd"}}},
		{name: "unknown name", pods: []pod{{"apiserver", "etcd,cm"}, {"cm", ""}},
			after:    map[string][]string{"apiserver": {"cm"}},
			problems: map[string][]string{"apiserver": {`dir/apiserver.yaml: metadata.annotations[mirrorlet.io/after]: Invalid value: "etcd": no manifest defines static pod "etcd"`}}},
		{name: "two-pod cycle", pods: []pod{{"a", "b"}, {"b", "a"}},
			problems: map[string][]string{
				"a": {"dir/a.yaml: metadata.annotations[mirrorlet.io/after]", "start order cycle between a (dir/a.yaml), b (dir/b.yaml)"},
				"b": {"dir/b.yaml: ", "start order cycle between a (dir/a.yaml), b (dir/b.yaml)"}}},
		{name: "three-pod cycle with a tail and an exit", pods: []pod{{"a", "c,x"}, {"b", "a"}, {"c", "b"}, {"tail", "a"}, {"x", ""}},
			// Edges inside the cycle are dropped; those leaving it stay.
			after: map[string][]string{"a": {"x"}, "tail": {"a"}},
			problems: map[string][]string{
				"a": {"cycle between a (dir/a.yaml), b (dir/b.yaml), c (dir/c.yaml)"},
				"b": {"cycle between a (dir/a.yaml), b (dir/b.yaml), c (dir/c.yaml)"},
				"c": {"cycle between a (dir/a.yaml), b (dir/b.yaml), c (dir/c.yaml)"}}},
		{name: "two separate cycles", pods: []pod{{"a", "b"}, {"b", "a"}, {"c", "d"}, {"d", "c"}},
			problems: map[string][]string{
				"a": {"cycle between a (dir/a.yaml), b (dir/b.yaml);"}, "b": {"cycle between a"},
				"c": {"cycle between c (dir/c.yaml), d (dir/d.yaml);"}, "d": {"cycle between c"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(manifest.SourceFile)
			var snap Snapshot
			for _, p := range tc.pods {
				snap.Pods = append(snap.Pods, orderedPod(t, p.name, p.after))
			}
			s.Update(manifest.SourceFile, snap)
			for _, p := range tc.pods {
				var want []types.NamespacedName
				for _, n := range tc.after[p.name] {
					want = append(want, key(n))
				}
				if got := s.After(key(p.name)); !slices.Equal(got, want) {
					t.Errorf("%s waits for %v, want %v", p.name, got, want)
				}
				checkProblems(t, p.name, s.Problems(key(p.name)), tc.problems[p.name])
			}
		})
	}
}

func checkProblems(t *testing.T, name string, got []Problem, want []string) {
	t.Helper()
	if len(got) != min(len(want), 1) && len(got) != len(want) {
		t.Errorf("%s has problems %v, want %q", name, got, want)
		return
	}
	var msgs []string
	for _, p := range got {
		msgs = append(msgs, p.Err.Error())
		if !p.VersionRuns {
			t.Errorf("%s: start-order problem %q does not say the pod runs regardless", name, p.Err)
		}
	}
	text := strings.Join(msgs, "\n")
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%s: problems %q do not say %q", name, text, w)
		}
	}
}

// An unchanged start-order problem is the same Problem after another
// merge: subscribers are not woken for it.
func TestStartOrderProblemUnchangedNotifiesNothing(t *testing.T) {
	s := New(manifest.SourceFile)
	snap := Snapshot{Pods: []*manifest.StaticPod{orderedPod(t, "a", "b"), orderedPod(t, "b", "a")}}
	s.Update(manifest.SourceFile, snap)
	var got []types.NamespacedName
	defer s.Subscribe(func(k types.NamespacedName) { got = append(got, k) })()
	s.Update(manifest.SourceFile, snap)
	if len(got) != 0 {
		t.Errorf("an unchanged cycle notified %v", got)
	}
	s.Update(manifest.SourceFile, Snapshot{Pods: []*manifest.StaticPod{orderedPod(t, "a", "b"), orderedPod(t, "b", "")}})
	if !slices.Equal(got, []types.NamespacedName{key("a"), key("b")}) {
		t.Errorf("breaking the cycle notified %v", got)
	}
	if ps := s.AllProblems(); len(ps) != 0 {
		t.Errorf("problems left after the cycle is broken: %v", ps)
	}
}
