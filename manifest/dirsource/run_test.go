package dirsource

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/mirrorlet/mirrorlet/manifest/desired"
)

// tickers is how many waiters Run's own tickers (rescan, retry) put on
// the clock: one more means a debounce timer is armed.
const tickers = 2

// runFake runs a source on dir with a fake clock that the test alone
// moves: a publish that happens without a step was not debounced.
func runFake(t *testing.T, dir string) (*testingclock.FakeClock, *recorder) {
	t.Helper()
	clk := testingclock.NewFakeClock(time.Now())
	rec := &recorder{}
	s, err := New(Config{Path: dir, NodeName: "n1", Publish: rec.publish, Log: logr.Discard(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "initial scan", func() bool { _, n := rec.last(); return n == 1 })
	waitFor(t, "tickers", func() bool { return clk.Waiters() == tickers })
	return clk, rec
}

// endBurst moves the clock past the debounce and waits for the rescan
// that ends the burst.
func endBurst(t *testing.T, clk *testingclock.FakeClock, rec *recorder) {
	t.Helper()
	_, n := rec.last()
	clk.Step(time.Second)
	waitFor(t, "rescan after the burst", func() bool { _, m := rec.last(); return m > n })
}

// images lists, in order, every image of pod name the recorder saw
// published, counting a version once however many snapshots hold it.
func (r *recorder) images(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, snap := range r.snaps {
		for _, p := range snap.Pods {
			if img := p.Pod.Spec.Containers[0].Image; p.Pod.Name == name+"-n1" && (len(out) == 0 || out[len(out)-1] != img) {
				out = append(out, img)
			}
		}
	}
	return out
}

// problems counts the problems ever published.
func (r *recorder) problems() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, snap := range r.snaps {
		n += len(snap.Problems)
	}
	return n
}

func has(snap desired.Snapshot, name, image string) bool {
	for _, p := range snap.Pods {
		if p.Pod.Name == name+"-n1" && p.Pod.Spec.Containers[0].Image == image {
			return true
		}
	}
	return false
}

// A manifest its writer closed is published at once, without waiting for
// the debounce (the clock never moves here).
func TestClosedManifestIsReadAtOnce(t *testing.T) {
	dir := t.TempDir()
	_, rec := runFake(t, dir)
	write(t, dir, "a.yaml", pod("a", "i:1"))
	waitFor(t, "a.yaml published", func() bool { snap, _ := rec.last(); return has(snap, "a", "i:1") })
	tmp := filepath.Join(dir, ".b.yaml.tmp")
	write(t, dir, ".b.yaml.tmp", pod("b", "i:1"))
	if err := os.Rename(tmp, filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b.yaml renamed into place published", func() bool { snap, _ := rec.last(); return has(snap, "b", "i:1") })
}

// A file still open for writing is neither read nor reported, even when
// what is written so far loads (a shorter image tag): only the version
// its writer closes ever runs.
func TestHalfWrittenManifestIsNeverReadNorReported(t *testing.T) {
	for _, tc := range []struct{ name, part string }{
		{"does not load", "apiVersion: v1\nkind: Po"},
		{"loads", strings.TrimSuffix(pod("a", "i:1"), "\n")}, // the whole file says i:12
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clk, rec := runFake(t, dir)
			f, err := os.OpenFile(filepath.Join(dir, "a.yaml"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = f.Close() }()
			if _, err := f.WriteString(tc.part); err != nil {
				t.Fatal(err)
			}
			// The writes were seen: they armed the debounce, nothing else.
			waitFor(t, "debounce armed", func() bool { return clk.Waiters() == tickers+1 })
			if _, n := rec.last(); n != 1 {
				t.Fatalf("a file being written caused %d publishes", n-1)
			}
			if _, err := f.WriteString(pod("a", "i:12")[len(tc.part):]); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "closed file published", func() bool { snap, _ := rec.last(); return has(snap, "a", "i:12") })
			endBurst(t, clk, rec)
			if got := rec.images("a"); len(got) != 1 || rec.problems() != 0 {
				t.Errorf("versions published %v, %d problems; want only i:12 and no problem", got, rec.problems())
			}
		})
	}
}

// Editor save sequences and writes in a burst fold: the pod never goes
// missing, and a burst of writes to one file publishes its first version
// at once and then only its last.
func TestSaveSequencesFold(t *testing.T) {
	dir := t.TempDir()
	clk, rec := runFake(t, dir)
	path := filepath.Join(dir, "a.yaml")
	write(t, dir, "a.yaml", pod("a", "i:1"))
	waitFor(t, "first version", func() bool { snap, _ := rec.last(); return has(snap, "a", "i:1") })
	endBurst(t, clk, rec)

	// vim: rename away, write anew, remove the backup.
	if err := os.Rename(path, path+"~"); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "a.yaml", pod("a", "i:2"))
	if err := os.Remove(path + "~"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "saved version", func() bool { snap, _ := rec.last(); return has(snap, "a", "i:2") })
	for i := 3; i <= 20; i++ { // further saves in the same burst
		write(t, dir, "a.yaml", pod("a", "i:"+string(rune('a'+i))))
	}
	last := "i:" + string(rune('a'+20))
	waitFor(t, "last version", func() bool { clk.Step(time.Second); snap, _ := rec.last(); return has(snap, "a", last) })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, snap := range rec.snaps[1:] {
		if len(snap.Pods) != 1 {
			t.Errorf("snapshot %d has %d pods: the pod went missing during a save", i+1, len(snap.Pods))
		}
	}
}

// A burst of writes to one file publishes its first version at once and
// then only its last.
func TestBurstOfWritesFolds(t *testing.T) {
	dir := t.TempDir()
	clk, rec := runFake(t, dir)
	for i := range 20 {
		write(t, dir, "a.yaml", pod("a", "i:"+string(rune('a'+i))))
	}
	waitFor(t, "first version", func() bool { snap, _ := rec.last(); return len(snap.Pods) == 1 })
	// Steps until the rescan after the last write's events.
	waitFor(t, "last version", func() bool { clk.Step(time.Second); snap, _ := rec.last(); return has(snap, "a", "i:t") })
	if got := rec.images("a"); len(got) > 2 {
		t.Errorf("20 writes in a burst published versions %v, want at most the first and the last", got)
	}
}

// The directory removed and made again is watched again.
func TestDirectoryComesBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	clk, rec := runFake(t, dir)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "removal seen", func() bool { return clk.Waiters() == tickers+1 })
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "a.yaml", pod("a", "i:1"))
	waitFor(t, "manifest in the new directory", func() bool {
		clk.Step(time.Second)
		snap, _ := rec.last()
		return has(snap, "a", "i:1")
	})
	write(t, dir, "a.yaml", pod("a", "i:2"))
	waitFor(t, "new directory watched", func() bool { snap, _ := rec.last(); return has(snap, "a", "i:2") })
}

// A burst of manifests renamed into place, all read at once, ends
// without a full rescan (which would read every manifest again).
func TestBurstReadAtOnceNeedsNoRescan(t *testing.T) {
	dir := t.TempDir()
	clk, rec := runFake(t, dir)
	for _, name := range []string{"a", "b", "c"} {
		tmp := filepath.Join(dir, "."+name+".yaml.tmp")
		write(t, dir, "."+name+".yaml.tmp", pod(name, "i:1"))
		if err := os.Rename(tmp, filepath.Join(dir, name+".yaml")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all three published", func() bool { snap, _ := rec.last(); return len(snap.Pods) == 3 })
	_, n := rec.last()
	clk.Step(time.Second) // ends the burst
	// A rescan would publish within moments: watch for one for 300 ms.
	err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, 300*time.Millisecond, true,
		func(context.Context) (bool, error) { _, m := rec.last(); return m != n, nil })
	if err == nil {
		_, m := rec.last()
		t.Errorf("%d publishes after the burst ended, want none: the burst ended with a rescan", m-n)
	}
}
