package desired

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// swapResolver runs instead when set (whatever its key), else the
// source's version.
type swapResolver struct{ instead *manifest.StaticPod }

func (r *swapResolver) Resolve(sp *manifest.StaticPod) *manifest.StaticPod {
	if r.instead != nil {
		return r.instead
	}
	return sp
}

func TestResolverChoosesTheVersionAndRefreshNotifies(t *testing.T) {
	s := New(manifest.SourceFile)
	r := &swapResolver{}
	s.SetResolver(r)
	var got []types.NamespacedName
	cancel := s.Subscribe(func(k types.NamespacedName) { got = append(got, k) })
	defer cancel()
	v2 := staticPod(t, "web", manifest.SourceFile, "i:2")
	s.Update(manifest.SourceFile, Snapshot{Pods: []*manifest.StaticPod{v2}})
	got = nil

	s.Refresh()
	if len(got) != 0 {
		t.Errorf("a refresh without a new choice notified %v", got)
	}
	v1 := staticPod(t, "web", manifest.SourceFile, "i:1")
	r.instead = v1
	s.Refresh()
	if sp, _ := s.Get(v2.Key()); sp != v1 {
		t.Errorf("the resolver's choice does not run")
	}
	if !slices.Equal(got, []types.NamespacedName{v2.Key()}) {
		t.Errorf("notified %v, want the pod's key", got)
	}
	r.instead = staticPod(t, "other", manifest.SourceFile, "i:1")
	s.Refresh()
	if sp, _ := s.Get(v2.Key()); sp != v2 {
		t.Errorf("a resolver's pod of another key was taken")
	}
}
