package dirsource

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/mirrorlet/mirrorlet/manifest/lastgood"
)

// restarted returns a new Source (as after a mirrorlet restart) reading dir,
// with the last-good store in storeDir.
func restarted(t *testing.T, dir, storeDir string) (*Source, *recorder) {
	t.Helper()
	store, err := lastgood.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s, err := New(Config{Path: dir, NodeName: "n1", Publish: rec.publish, LastGood: store, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func TestInvalidEditWhileStoppedKeepsLastGood(t *testing.T) {
	dir, store := t.TempDir(), t.TempDir()
	write(t, dir, "web.yaml", pod("web", "nginx:1.27"))
	s, rec := restarted(t, dir, store)
	s.Rescan()
	before, _ := rec.last()

	// mirrorlet stops; someone breaks the file; mirrorlet starts again.
	write(t, dir, "web.yaml", strings.Replace(pod("web", "nginx:1.28"), "image:", "imagee:", 1))
	s, rec = restarted(t, dir, store)
	s.Rescan()
	snap, _ := rec.last()
	if len(snap.Pods) != 1 || snap.Pods[0].Hash != before.Pods[0].Hash {
		t.Fatalf("after the restart pods %v, want the last good web (hash %s)", names(snap), before.Pods[0].Hash)
	}
	if len(snap.Problems) != 1 || snap.Problems[0].Key != snap.Pods[0].Key() ||
		!strings.Contains(snap.Problems[0].Err.Error(), "imagee") {
		t.Errorf("problems %+v, want the bad edit reported on web", snap.Problems)
	}

	// Fixed: the new version runs and becomes the saved one.
	write(t, dir, "web.yaml", pod("web", "nginx:1.28"))
	s.Rescan()
	fixed, _ := rec.last()
	write(t, dir, "web.yaml", "junk: [")
	s, rec = restarted(t, dir, store)
	s.Rescan()
	if snap, _ := rec.last(); len(snap.Pods) != 1 || snap.Pods[0].Hash != fixed.Pods[0].Hash {
		t.Errorf("after a second restart pods %v, want the fixed version", names(snap))
	}
}

func TestUnreadableDirectoryAtStartRunsLastGood(t *testing.T) {
	parent, store := t.TempDir(), t.TempDir()
	dir := filepath.Join(parent, "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "a.yaml", pod("a", "i:1"))
	write(t, dir, "b.yaml", pod("b", "i:1"))
	s, _ := restarted(t, dir, store)
	s.Rescan()

	if err := os.Rename(dir, dir+".away"); err != nil { // e.g. a mount not back yet
		t.Fatal(err)
	}
	s, rec := restarted(t, dir, store)
	s.Rescan()
	snap, n := rec.last()
	if n != 1 || !slices.Equal(names(snap), []string{"a-n1", "b-n1"}) {
		t.Fatalf("published %d snapshots, pods %v; want the saved a and b", n, names(snap))
	}
	for _, p := range snap.Problems {
		if !strings.Contains(p.Err.Error(), dir) {
			t.Errorf("problem %v does not name the directory", p.Err)
		}
	}
	s.Rescan() // still unreadable: nothing new
	if _, n := rec.last(); n != 1 {
		t.Errorf("published again while the directory stays unreadable")
	}
}

func TestRemovedManifestIsForgotten(t *testing.T) {
	dir, store := t.TempDir(), t.TempDir()
	write(t, dir, "a.yaml", pod("a", "i:1"))
	write(t, dir, "b.yaml", pod("b", "i:1"))
	s, _ := restarted(t, dir, store)
	s.Rescan()
	if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	s.Rescan()

	// b was removed on purpose: a restart with an unreadable directory
	// must not bring it back.
	if err := os.Chmod(dir, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	s, rec := restarted(t, dir, store)
	s.Rescan()
	if snap, _ := rec.last(); !slices.Equal(names(snap), []string{"a-n1"}) {
		t.Errorf("pods %v, want only a", names(snap))
	}
}

// While Run runs, saves are made after the publish, off its path; what
// Run read is on disk when it returns, and a manifest added and removed
// in between is not.
func TestRunSavesLastGoodByItsEnd(t *testing.T) {
	dir, storeDir := t.TempDir(), t.TempDir()
	s, rec := restarted(t, dir, storeDir)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "initial scan", func() bool { _, n := rec.last(); return n == 1 })
	write(t, dir, "web.yaml", pod("web", "nginx:1.27"))
	write(t, dir, "gone.yaml", pod("gone", "nginx:1.27"))
	waitFor(t, "both published", func() bool { snap, _ := rec.last(); return len(snap.Pods) == 2 })
	if err := os.Remove(filepath.Join(dir, "gone.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "removal published", func() bool { snap, _ := rec.last(); return len(snap.Pods) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	store, err := lastgood.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := store.Keys(), []string{filepath.Join(dir, "web.yaml")}; !slices.Equal(got, want) {
		t.Errorf("saved %v, want %v", got, want)
	}
}
