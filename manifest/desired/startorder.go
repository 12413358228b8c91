package desired

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// After returns the static pods that the pod key waits for before its
// containers first start (manifest.AnnotationAfter): the named pods that
// are desired and not in a start-order cycle with key. Names no manifest
// defines, and cycles, are Problems of the pods that name them.
func (s *Set) After(key types.NamespacedName) []types.NamespacedName {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g := newOrderGraph(s.merged)
	var out []types.NamespacedName
	for _, dep := range g.edges[key] {
		if !g.sameCycle(key, dep) {
			out = append(out, dep)
		}
	}
	return out
}

// orderGraph is the start order between the merged static pods: an edge
// from each pod to every pod its AnnotationAfter names.
type orderGraph struct {
	pods  map[types.NamespacedName]*manifest.StaticPod
	edges map[types.NamespacedName][]types.NamespacedName
	// unknown holds the names that no merged pod has, by pod.
	unknown map[types.NamespacedName][]string
	// cycle numbers the cycles (strongly connected components of more
	// than one pod); cycles lists their pods, sorted.
	cycle  map[types.NamespacedName]int
	cycles [][]types.NamespacedName
}

// sameCycle reports whether a and b are in one start-order cycle.
func (g *orderGraph) sameCycle(a, b types.NamespacedName) bool {
	ca, okA := g.cycle[a]
	cb, okB := g.cycle[b]
	return okA && okB && ca == cb
}

func newOrderGraph(merged map[types.NamespacedName]*manifest.StaticPod) *orderGraph {
	g := &orderGraph{pods: merged, edges: map[types.NamespacedName][]types.NamespacedName{},
		unknown: map[types.NamespacedName][]string{}, cycle: map[types.NamespacedName]int{}}
	for key, sp := range merged {
		names, _ := manifest.StartAfter(sp.Pod)
		for _, name := range names {
			dep := types.NamespacedName{Namespace: key.Namespace, Name: manifest.MirrorName(name, sp.Pod.Spec.NodeName)}
			if _, ok := merged[dep]; ok && dep != key {
				g.edges[key] = append(g.edges[key], dep)
			} else if !ok {
				g.unknown[key] = append(g.unknown[key], name)
			}
		}
	}
	g.findCycles()
	return g
}

// findCycles runs Tarjan's algorithm over the graph.
func (g *orderGraph) findCycles() {
	t := &tarjan{g: g, index: map[types.NamespacedName]int{}, low: map[types.NamespacedName]int{},
		onStack: map[types.NamespacedName]bool{}}
	for _, key := range sortedKeys(g.pods) {
		if _, seen := t.index[key]; !seen {
			t.visit(key)
		}
	}
}

type tarjan struct {
	g       *orderGraph
	next    int
	index   map[types.NamespacedName]int
	low     map[types.NamespacedName]int
	onStack map[types.NamespacedName]bool
	stack   []types.NamespacedName
}

func (t *tarjan) visit(v types.NamespacedName) {
	t.index[v], t.low[v] = t.next, t.next
	t.next++
	t.stack = append(t.stack, v)
	t.onStack[v] = true
	for _, w := range t.g.edges[v] {
		if _, seen := t.index[w]; !seen {
			t.visit(w)
			t.low[v] = min(t.low[v], t.low[w])
		} else if t.onStack[w] {
			t.low[v] = min(t.low[v], t.index[w])
		}
	}
	if t.low[v] != t.index[v] {
		return
	}
	var scc []types.NamespacedName
	for {
		w := t.stack[len(t.stack)-1]
		t.stack = t.stack[:len(t.stack)-1]
		t.onStack[w] = false
		scc = append(scc, w)
		if w == v {
			break
		}
	}
	if len(scc) > 1 {
		slices.SortFunc(scc, compareKeys)
		for _, w := range scc {
			t.g.cycle[w] = len(t.g.cycles)
		}
		t.g.cycles = append(t.g.cycles, scc)
	}
}

// problems returns the start-order problems of every pod: names no pod
// has, and cycles (naming every file of the cycle).
func (g *orderGraph) problems() map[types.NamespacedName][]Problem {
	out := map[types.NamespacedName][]Problem{}
	path := field.NewPath("metadata", "annotations").Key(manifest.AnnotationAfter)
	add := func(key types.NamespacedName, fe *field.Error) {
		sp := g.pods[key]
		out[key] = append(out[key], Problem{Key: key, Origin: sp.Origin, VersionRuns: true,
			Err: &manifest.Error{Origin: sp.Origin, Fields: field.ErrorList{fe}}})
	}
	for _, key := range sortedKeys(g.pods) {
		for _, name := range g.unknown[key] {
			add(key, field.Invalid(path, name, fmt.Sprintf(
				"no manifest defines static pod %q in namespace %s; the pod starts without waiting for it", name, key.Namespace)))
		}
		if c, ok := g.cycle[key]; ok {
			add(key, field.Invalid(path, g.pods[key].Pod.Annotations[manifest.AnnotationAfter],
				"start order cycle between "+g.describe(g.cycles[c])+"; the pods in it do not wait for each other"))
		}
	}
	return out
}

// describe names the pods of a cycle with their files.
func (g *orderGraph) describe(keys []types.NamespacedName) string {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		sp := g.pods[k]
		parts = append(parts, fmt.Sprintf("%s (%s)", manifest.OwnName(sp.Pod), sp.Origin))
	}
	return strings.Join(parts, ", ")
}

// addOrderProblems adds the start-order problems of merged to problems,
// reusing the Problem values of old that say the same, so an unchanged
// problem does not count as a change.
func addOrderProblems(merged map[types.NamespacedName]*manifest.StaticPod, problems, old map[types.NamespacedName][]Problem) {
	for key, ps := range newOrderGraph(merged).problems() {
		for _, p := range ps {
			if i := slices.IndexFunc(old[key], func(o Problem) bool { return o.Err.Error() == p.Err.Error() }); i >= 0 {
				p = old[key][i]
			}
			problems[key] = append(problems[key], p)
		}
	}
}

func sortedKeys(m map[types.NamespacedName]*manifest.StaticPod) []types.NamespacedName {
	keys := make([]types.NamespacedName, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

func compareKeys(a, b types.NamespacedName) int {
	if c := compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return compare(a.Name, b.Name)
}
