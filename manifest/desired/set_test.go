package desired

import (
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest"
)

func staticPod(t *testing.T, name, source, image string) *manifest.StaticPod {
	t.Helper()
	data := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n  containers:\n  - name: c\n    image: " + image + "\n"
	sp, err := manifest.Load([]byte(data), manifest.Identity{NodeName: "n1", Source: source, Origin: source + "/" + name, Seen: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestSetMergesSourcesAndNotifiesChanges(t *testing.T) {
	s := New(manifest.SourceFile, manifest.SourceHTTP)
	var got []types.NamespacedName
	cancel := s.Subscribe(func(k types.NamespacedName) { got = append(got, k) })
	defer cancel()

	fileWeb := staticPod(t, "web", manifest.SourceFile, "i:1")
	s.Update(manifest.SourceFile, Snapshot{Pods: []*manifest.StaticPod{fileWeb}})
	if s.Synced() {
		t.Errorf("synced before the http source published")
	}
	httpWeb := staticPod(t, "web", manifest.SourceHTTP, "i:2")
	httpOther := staticPod(t, "other", manifest.SourceHTTP, "i:2")
	s.Update(manifest.SourceHTTP, Snapshot{Pods: []*manifest.StaticPod{httpWeb, httpOther}})
	if !s.Synced() {
		t.Errorf("not synced after every source published")
	}
	if sp, _ := s.Get(fileWeb.Key()); sp != fileWeb {
		t.Errorf("the directory must win a name clash")
	}
	want := []types.NamespacedName{fileWeb.Key(), httpOther.Key()}
	if !slices.Equal(got, want) {
		t.Errorf("notified %v, want %v", got, want)
	}

	got = nil
	s.Update(manifest.SourceFile, Snapshot{})
	if sp, _ := s.Get(fileWeb.Key()); sp != httpWeb {
		t.Errorf("after the file went away the URL's pod should take the name")
	}
	if !slices.Equal(got, []types.NamespacedName{fileWeb.Key()}) {
		t.Errorf("notified %v", got)
	}
	got = nil
	s.Update(manifest.SourceHTTP, Snapshot{Pods: []*manifest.StaticPod{httpWeb, httpOther}})
	if len(got) != 0 {
		t.Errorf("an unchanged snapshot notified %v", got)
	}
}
