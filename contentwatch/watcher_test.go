package contentwatch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"
)

const debounce = 2 * time.Second

// harness runs a Watcher on a fake clock and records its OnChange calls.
type harness struct {
	t     *testing.T
	w     *Watcher
	clock *clocktesting.FakeClock
	mu    sync.Mutex
	calls []types.UID
	stop  func()
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessIn(t, "")
}

// newHarnessIn is newHarness with baselines kept in stateDir.
func newHarnessIn(t *testing.T, stateDir string) *harness {
	t.Helper()
	h := &harness{t: t, clock: clocktesting.NewFakeClock(time.Unix(1000, 0))}
	w, err := New(Config{Debounce: debounce, CheckPeriod: time.Hour, Clock: h.clock, StateDir: stateDir, OnChange: func(uid types.UID) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.calls = append(h.calls, uid)
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	h.stop = func() { cancel(); <-done }
	t.Cleanup(h.stop)
	return h
}

func (h *harness) onChangeCalls() []types.UID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(h.t.Context(), 10*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		h.t.Fatalf("timed out waiting for %s", what)
	}
}

// waitDirty waits until inotify marked path dirty.
func (h *harness) waitDirty(path string) {
	h.t.Helper()
	h.eventually(path+" marked dirty", func() bool {
		h.w.mu.Lock()
		defer h.w.mu.Unlock()
		_, ok := h.w.dirty[path]
		return ok
	})
}

// settle steps the clock past the debounce until a comparison ran and
// nothing is dirty any more.
func (h *harness) settle() {
	h.t.Helper()
	before := h.w.checks.Load()
	h.eventually("the dirty paths compared", func() bool {
		h.clock.Step(debounce)
		h.w.mu.Lock()
		defer h.w.mu.Unlock()
		return h.w.checks.Load() > before && len(h.w.dirty) == 0
	})
}

func (h *harness) wantSeq(uid types.UID, seq uint64, paths ...string) {
	h.t.Helper()
	got, gotPaths := h.w.Changed(uid)
	if got != seq || (paths != nil && !slices.Equal(gotPaths, paths)) {
		h.t.Fatalf("pod %s: change %d %v, want seq %d paths %v", uid, got, gotPaths, seq, paths)
	}
}

// renameOver writes content to a new file and renames it over path, as
// kubeadm renews a certificate.
func renameOver(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// swapData writes files into a new timestamped directory of dir and swaps
// the ..data symlink to it, as the Kubernetes atomic writer does; the
// visible names are symlinks to ..data/NAME.
func swapData(t *testing.T, dir string, seq int, files map[string]string) {
	t.Helper()
	ts := fmt.Sprintf("..2026_%d", seq)
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, ts, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// A burst of rewrites is one change, reported only once the path has been
// quiet for the debounce period; rewriting the same bytes is none.
func TestBurstOfRewritesIsOneChange(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	renameOver(t, crt, "crt1")
	renameOver(t, key, "key1")
	h.w.Watch("pod", []string{crt, key})
	h.w.Watch("pod", []string{key, crt}) // again, as every sync does: no new baseline

	renameOver(t, crt, "crt2")
	renameOver(t, key, "key2")
	renameOver(t, crt, "crt3")
	h.waitDirty(crt)
	h.waitDirty(key)
	h.wantSeq("pod", 0) // not before the debounce period
	h.settle()
	h.wantSeq("pod", 1, crt, key)
	h.eventually("OnChange called", func() bool { return len(h.onChangeCalls()) > 0 })
	if got := h.onChangeCalls(); !slices.Equal(got, []types.UID{"pod"}) {
		t.Fatalf("OnChange calls %v, want one for pod", got)
	}

	renameOver(t, crt, "crt3") // same bytes, new inode
	h.waitDirty(crt)
	h.settle()
	h.wantSeq("pod", 1)
}

// A ..data symlink swap that changes a file is a change; one that swaps
// identical content is none.
func TestDataSymlinkSwap(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	swapData(t, dir, 1, map[string]string{"ca.crt": "ca1", "tls.crt": "crt1"})
	crt := filepath.Join(dir, "tls.crt")
	h.w.Watch("file", []string{crt})
	h.w.Watch("dir", []string{dir})

	swapData(t, dir, 2, map[string]string{"ca.crt": "ca1", "tls.crt": "crt1"})
	h.waitDirty(crt)
	h.settle()
	h.wantSeq("file", 0)
	h.wantSeq("dir", 0)

	swapData(t, dir, 3, map[string]string{"ca.crt": "ca2", "tls.crt": "crt1"})
	h.waitDirty(dir)
	h.settle()
	h.wantSeq("file", 0) // its own content is the same
	h.wantSeq("dir", 1, dir)

	swapData(t, dir, 4, map[string]string{"ca.crt": "ca2", "tls.crt": "crt2"})
	h.waitDirty(crt)
	h.settle()
	h.wantSeq("file", 1, crt)
	h.wantSeq("dir", 2, dir)
}

// A file that disappears changes nothing until it is back, and then only
// if its content differs from what the pod runs with.
func TestMissingFileIsNoChange(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	crt := filepath.Join(dir, "tls.crt")
	renameOver(t, crt, "crt1")
	h.w.Watch("pod", []string{crt})

	if err := os.Remove(crt); err != nil {
		t.Fatal(err)
	}
	h.waitDirty(crt)
	h.settle()
	h.wantSeq("pod", 0)

	renameOver(t, crt, "crt1") // back as it was
	h.waitDirty(crt)
	h.settle()
	h.wantSeq("pod", 0)

	if err := os.Remove(crt); err != nil {
		t.Fatal(err)
	}
	h.waitDirty(crt)
	h.settle()
	renameOver(t, crt, "crt2")
	h.waitDirty(crt)
	h.settle()
	h.wantSeq("pod", 1, crt)
}

// Only the pods that watch a path hear of its change; a forgotten pod
// version none; files in a watched directory's subdirectories count.
func TestOnlyWatchersOfAPathChange(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	sub := filepath.Join(dir, "etcd")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "a.crt"), filepath.Join(sub, "b.crt")
	renameOver(t, a, "a1")
	renameOver(t, b, "b1")
	h.w.Watch("watches-a", []string{a})
	h.w.Watch("watches-dir", []string{dir})
	h.w.Watch("forgotten", []string{b})
	h.w.Forget("forgotten")

	renameOver(t, b, "b2")
	h.waitDirty(dir)
	h.settle()
	h.wantSeq("watches-a", 0)
	h.wantSeq("watches-dir", 1, dir)
	h.wantSeq("forgotten", 0)
	h.eventually("OnChange called", func() bool { return len(h.onChangeCalls()) > 0 })
	if got := h.onChangeCalls(); !slices.Equal(got, []types.UID{"watches-dir"}) {
		t.Fatalf("OnChange calls %v, want one for watches-dir", got)
	}
}

// The periodic check finds a change inotify did not report.
func TestPeriodicCheckFindsMissedChange(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	crt := filepath.Join(dir, "tls.crt")
	renameOver(t, crt, "crt1")
	h.w.Watch("pod", []string{crt})
	if err := h.w.notify.Remove(dir); err != nil { // as if inotify had missed it
		t.Fatal(err)
	}
	renameOver(t, crt, "crt2")
	h.eventually("the periodic check to find the change", func() bool {
		h.clock.Step(time.Hour)
		seq, _ := h.w.Changed("pod")
		return seq == 1
	})
}

// A path whose directory is created after the pod started is watched
// once it exists; its content appearing is a change (the pod started
// without it).
func TestDirectoryCreatedLater(t *testing.T) {
	h := newHarness(t)
	dir := filepath.Join(t.TempDir(), "later")
	crt := filepath.Join(dir, "tls.crt")
	h.w.Watch("pod", []string{crt})
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	renameOver(t, crt, "crt1")
	h.eventually("the periodic check to find the new file", func() bool {
		h.clock.Step(time.Hour)
		seq, _ := h.w.Changed("pod")
		return seq == 1
	})
	h.eventually("the new directory under inotify", func() bool {
		h.w.mu.Lock()
		defer h.w.mu.Unlock()
		return h.w.added[dir]
	})
	renameOver(t, crt, "crt2")
	h.waitDirty(crt)
	h.settle()
	h.wantSeq("pod", 2, crt)
}

// With a state directory, the baselines outlive the watcher (a restart of
// mirrorlet): content changed meanwhile is a change, content unchanged is
// none; Forget removes them.
func TestBaselinesOutliveARestart(t *testing.T) {
	state, dir := t.TempDir(), t.TempDir()
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	renameOver(t, crt, "crt1")
	renameOver(t, key, "key1")
	h := newHarnessIn(t, state)
	h.w.Watch("pod", []string{crt, key})
	h.stop()

	renameOver(t, crt, "crt2") // while "mirrorlet" is stopped
	h = newHarnessIn(t, state)
	h.w.Watch("pod", []string{crt, key})
	h.settle()
	h.wantSeq("pod", 1, crt)
	h.stop()

	h = newHarnessIn(t, state) // nothing changed since
	h.w.Watch("pod", []string{crt, key})
	h.clock.Step(time.Minute)
	h.w.mu.Lock()
	dirty := len(h.w.dirty)
	h.w.mu.Unlock()
	if seq, _ := h.w.Changed("pod"); seq != 0 || dirty != 0 {
		t.Fatalf("after a restart without a change: seq %d, %d paths dirty", seq, dirty)
	}
	h.w.Forget("pod")
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Fatalf("Forget left %v", entries)
	}
}

// inotifyInstances counts the inotify instances this process holds.
func inotifyInstances(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// A Watcher holds an inotify instance only while some pod watches a path:
// an agent none of whose pods opts in takes none of the user's
// fs.inotify.max_user_instances. A change is still seen through inotify
// once a pod watches, and again after the instance was closed and
// started anew.
func TestInotifyOnlyWhileAPodWatches(t *testing.T) {
	before := inotifyInstances(t)
	h := newHarness(t)
	if got := inotifyInstances(t); got != before {
		t.Fatalf("a new running Watcher holds %d inotify instances, want 0", got-before)
	}
	h.w.Watch("nothing", nil)
	if got := inotifyInstances(t); got != before {
		t.Fatalf("a pod watching no path started %d inotify instances, want 0", got-before)
	}
	file := filepath.Join(t.TempDir(), "tls.crt")
	for round, content := range []string{"a", "b"} {
		renameOver(t, file, content)
		h.w.Watch("pod", []string{file})
		if got := inotifyInstances(t); got != before+1 {
			t.Fatalf("round %d: watching a path: %d inotify instances, want 1", round, got-before)
		}
		renameOver(t, file, content+"2")
		h.waitDirty(file) // marked by inotify: the periodic check runs hourly
		h.settle()
		h.wantSeq("pod", 1, file)
		h.w.Forget("pod")
		h.eventually("the inotify instance closed", func() bool { return inotifyInstances(t) == before })
	}
}
