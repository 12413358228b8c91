package dirsource

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/mirrorlet/mirrorlet/manifest/desired"
)

func pod(name, image string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name +
		"\nspec:\n  containers:\n  - name: c\n    image: " + image + "\n"
}

// recorder keeps every published snapshot.
type recorder struct {
	mu    sync.Mutex
	snaps []desired.Snapshot
}

func (r *recorder) publish(s desired.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, s)
}

func (r *recorder) last() (desired.Snapshot, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snaps) == 0 {
		return desired.Snapshot{}, 0
	}
	return r.snaps[len(r.snaps)-1], len(r.snaps)
}

func newSource(t *testing.T, dir string) (*Source, *recorder) {
	t.Helper()
	rec := &recorder{}
	s, err := New(Config{Path: dir, NodeName: "n1", Publish: rec.publish, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func names(s desired.Snapshot) []string {
	var out []string
	for _, p := range s.Pods {
		out = append(out, p.Pod.Name)
	}
	return out
}

func TestScanReadsOnlyManifests(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", pod("a", "i:1"))
	write(t, dir, "b.yml", pod("b", "i:1"))
	write(t, dir, "c.json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"c"},"spec":{"containers":[{"name":"c","image":"i:1"}]}}`)
	write(t, dir, ".hidden.yaml", pod("hidden", "i:1"))
	write(t, dir, "d.yaml.bak", pod("bak", "i:1"))
	write(t, dir, "e.yaml~", pod("tilde", "i:1"))
	if err := os.Mkdir(filepath.Join(dir, "x.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop.yaml", filepath.Join(dir, "loop.yaml")); err != nil {
		t.Fatal(err)
	}
	s, rec := newSource(t, dir)
	s.Rescan()
	snap, _ := rec.last()
	if got := strings.Join(names(snap), ","); got != "a-n1,b-n1,c-n1" {
		t.Errorf("pods %s, want a-n1,b-n1,c-n1", got)
	}
	problems := map[string]string{}
	for _, p := range snap.Problems {
		problems[filepath.Base(p.Origin)] = p.Err.Error()
	}
	for file, want := range map[string]string{"x.yaml": "is a directory", "fifo.yaml": "not a regular file", "loop.yaml": "too many levels"} {
		if !strings.Contains(problems[file], want) {
			t.Errorf("problem for %s = %q, want it to contain %q", file, problems[file], want)
		}
	}
}

func TestBadEditKeepsLastGoodVersion(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", pod("a", "i:1"))
	s, rec := newSource(t, dir)
	s.Rescan()
	good, _ := rec.last()

	write(t, dir, "a.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: c\n    ima") // truncated
	s.Rescan()
	snap, _ := rec.last()
	if len(snap.Pods) != 1 || snap.Pods[0] != good.Pods[0] {
		t.Fatalf("bad edit replaced the last good pod: %v", names(snap))
	}
	if len(snap.Problems) != 1 || snap.Problems[0].Key != good.Pods[0].Key() {
		t.Fatalf("problems %+v, want one for %s", snap.Problems, good.Pods[0].Key())
	}

	write(t, dir, "a.yaml", pod("a", "i:2"))
	s.Rescan()
	snap, _ = rec.last()
	if len(snap.Problems) != 0 || snap.Pods[0].Pod.Spec.Containers[0].Image != "i:2" {
		t.Fatalf("fixed file not picked up: %+v", snap)
	}
}

func TestUnchangedFileKeepsSamePod(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", pod("a", "i:1"))
	s, rec := newSource(t, dir)
	s.Rescan()
	first, _ := rec.last()
	s.Rescan()
	second, _ := rec.last()
	if first.Pods[0] != second.Pods[0] {
		t.Errorf("a rescan of an unchanged file built a new static pod")
	}
}

func TestMissingDirectoryPublishesNothing(t *testing.T) {
	s, rec := newSource(t, filepath.Join(t.TempDir(), "missing"))
	s.Rescan()
	if _, n := rec.last(); n != 0 {
		t.Errorf("published %d snapshots for a missing directory; the previous pods must stay", n)
	}
}

func TestRunSeesChangesQuicklyAndDebouncesBursts(t *testing.T) {
	dir := t.TempDir()
	s, rec := newSource(t, dir)
	s.cfg.CheckFrequency = time.Hour // only inotify can explain a rescan
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor(t, "initial scan", func() bool { _, n := rec.last(); return n == 1 })

	start := time.Now()
	write(t, dir, "a.yaml", pod("a", "i:1"))
	waitFor(t, "new manifest seen", func() bool { snap, _ := rec.last(); return len(snap.Pods) == 1 })
	t.Logf("manifest write seen after %s", time.Since(start))

	_, before := rec.last()
	for i := range 20 { // an editor's save burst
		write(t, dir, "b.yaml", pod("b", "i:"+string(rune('a'+i))))
	}
	waitFor(t, "burst seen", func() bool { snap, _ := rec.last(); return len(snap.Pods) == 2 })
	waitFor(t, "burst settled", func() bool {
		snap, _ := rec.last()
		return len(snap.Pods) == 2 && snap.Pods[1].Pod.Spec.Containers[0].Image == "i:t"
	})
	if _, after := rec.last(); after-before > 5 {
		t.Errorf("20 writes caused %d rescans, want them folded", after-before)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestUnsafeFileKeepsLastGoodVersion(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", pod("a", "i:1"))
	s, rec := newSource(t, dir)
	s.Rescan()
	good, _ := rec.last()

	// Turned group-writable, with new content: not read, the old pod stays.
	write(t, dir, "a.yaml", pod("a", "i:2"))
	if err := os.Chmod(filepath.Join(dir, "a.yaml"), 0o664); err != nil {
		t.Fatal(err)
	}
	s.Rescan()
	snap, _ := rec.last()
	if len(snap.Pods) != 1 || snap.Pods[0] != good.Pods[0] {
		t.Fatalf("unsafe file replaced the last good pod: %v", names(snap))
	}
	if len(snap.Problems) != 1 || snap.Problems[0].Key != good.Pods[0].Key() ||
		!strings.Contains(snap.Problems[0].Err.Error(), filepath.Join(dir, "a.yaml")+": unsafe permissions (mode -rw-rw-r--") {
		t.Fatalf("problems %+v, want one for %s naming the file and its mode", snap.Problems, good.Pods[0].Key())
	}

	// A group-writable directory makes every file a problem.
	if err := os.Chmod(filepath.Join(dir, "a.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	s.Rescan()
	snap, _ = rec.last()
	if len(snap.Problems) != 1 || !strings.Contains(snap.Problems[0].Err.Error(), "writable by its group") ||
		snap.Pods[0] != good.Pods[0] {
		t.Fatalf("group-writable directory: %+v", snap)
	}

	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s.Rescan()
	snap, _ = rec.last()
	if len(snap.Problems) != 0 || snap.Pods[0].Pod.Spec.Containers[0].Image != "i:2" {
		t.Fatalf("safe file again not picked up: %+v", snap)
	}
}
