package dirsource

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// countDecodes makes s count its manifest decodes.
func countDecodes(s *Source) *int {
	n := new(int)
	s.decode = func(data []byte, id manifest.Identity) (*manifest.StaticPod, error) {
		*n++
		return manifest.Load(data, id)
	}
	return n
}

// touch sets path's modification time to mtime.
func touch(t *testing.T, path string, mtime time.Time) {
	t.Helper()
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestRescanDecodesOnlyChangedContent(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.yaml", "b.yaml", "c.yaml"} {
		write(t, dir, name, pod(strings.TrimSuffix(name, ".yaml"), "nginx:1.27"))
	}
	s, rec := newSource(t, dir)
	decodes := countDecodes(s)
	s.Rescan()
	first, _ := rec.last()
	if *decodes != 3 || len(first.Pods) != 3 {
		t.Fatalf("first scan: %d decodes, pods %v; want 3 and 3", *decodes, names(first))
	}

	// The same bytes written again (a new modification time): not decoded.
	write(t, dir, "a.yaml", pod("a", "nginx:1.27"))
	s.Rescan()
	s.Rescan()
	again, _ := rec.last()
	if *decodes != 3 {
		t.Errorf("rescans of unchanged content decoded %d more files, want 0", *decodes-3)
	}
	for i := range again.Pods {
		if again.Pods[i] != first.Pods[i] {
			t.Errorf("pod %s is a new StaticPod after a rescan of unchanged content", again.Pods[i].Pod.Name)
		}
	}

	// New content of the same size and modification time: decoded.
	path := filepath.Join(dir, "b.yaml")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "b.yaml", pod("b", "nginx:1.28"))
	touch(t, path, info.ModTime())
	s.Rescan()
	snap, _ := rec.last()
	if *decodes != 4 || snap.Pods[1].Pod.Spec.Containers[0].Image != "nginx:1.28" {
		t.Errorf("after an edit of b: %d decodes, b runs %s; want 4 and nginx:1.28",
			*decodes, snap.Pods[1].Pod.Spec.Containers[0].Image)
	}
}

func TestUnchangedBadContentIsReportedWithoutDecoding(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "web.yaml", pod("web", "nginx:1.27"))
	s, rec := newSource(t, dir)
	decodes := countDecodes(s)
	s.Rescan()
	good, _ := rec.last()
	write(t, dir, "web.yaml", strings.Replace(pod("web", "nginx:1.28"), "image: nginx:1.28", "image: ''", 1))
	for range 3 {
		s.Rescan()
		snap, _ := rec.last()
		if len(snap.Pods) != 1 || snap.Pods[0] != good.Pods[0] {
			t.Fatalf("pods %v, want the last good web", names(snap))
		}
		if len(snap.Problems) != 1 || !strings.Contains(snap.Problems[0].Err.Error(), "web.yaml") ||
			!strings.Contains(snap.Problems[0].Err.Error(), "spec.containers[0].image") {
			t.Fatalf("problems %+v, want web.yaml's image field reported", snap.Problems)
		}
	}
	if *decodes != 2 {
		t.Errorf("%d decodes, want 2 (the good version, the bad one once)", *decodes)
	}

	// Back to the good bytes: the same StaticPod runs, no problem left.
	write(t, dir, "web.yaml", pod("web", "nginx:1.27"))
	s.Rescan()
	if snap, _ := rec.last(); len(snap.Pods) != 1 || snap.Pods[0] != good.Pods[0] || len(snap.Problems) != 0 {
		t.Errorf("after the fix: pods %v, problems %v; want the same web and none", names(snap), snap.Problems)
	}
}

func TestRemovedAndRecreatedFileIsDecodedAgain(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "web.yaml", pod("web", "nginx:1.27"))
	s, rec := newSource(t, dir)
	decodes := countDecodes(s)
	s.Rescan()
	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	s.Rescan()
	if snap, _ := rec.last(); len(snap.Pods) != 0 {
		t.Fatalf("pods %v after the removal, want none", names(snap))
	}
	write(t, dir, "web.yaml", pod("web", "nginx:1.27"))
	s.Rescan()
	if snap, _ := rec.last(); len(snap.Pods) != 1 || *decodes != 2 {
		t.Errorf("pods %v, %d decodes; want web, 2", names(snap), *decodes)
	}
}

func TestFailedSaveIsRetriedForUnchangedContent(t *testing.T) {
	dir, store := t.TempDir(), filepath.Join(t.TempDir(), "store")
	write(t, dir, "web.yaml", pod("web", "nginx:1.27"))
	s, _ := restarted(t, dir, store)
	if err := os.RemoveAll(store); err != nil { // the save fails
		t.Fatal(err)
	}
	s.Rescan()
	path := filepath.Join(dir, "web.yaml")
	if _, ok := s.cfg.LastGood.Get(path); ok {
		t.Fatal("saved into a removed store directory")
	}
	if err := os.Mkdir(store, 0o700); err != nil {
		t.Fatal(err)
	}
	s.Rescan()
	if _, ok := s.cfg.LastGood.Get(path); !ok {
		t.Error("the unchanged manifest was not saved again after its save failed")
	}
}
