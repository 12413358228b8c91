package revisions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mirrorlet/mirrorlet/manifest"
)

var key = types.NamespacedName{Namespace: "default", Name: "web-n1"}

// version returns the static pod web read from a file with image tag v.
func version(t *testing.T, v string) *manifest.StaticPod {
	t.Helper()
	data := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: example.com/web:%s\n", v)
	sp, err := manifest.Load([]byte(data), manifest.Identity{NodeName: "n1", Source: manifest.SourceFile, Origin: "/m/web.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func open(t *testing.T, dir string, limit int) (*Store, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s, err := Open(Config{Dir: dir, Limit: limit, Clock: clk, Log: testr.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func TestResolveRecordsRevisions(t *testing.T) {
	s, clk := open(t, t.TempDir(), 5)
	v1 := version(t, "1")
	out := s.Resolve(v1)
	if out.Hash != v1.Hash || out.Pod.Annotations[AnnotationRevision] != "1" || out.Pod.Annotations[AnnotationPinnedReason] != "" {
		t.Fatalf("first resolve: hash %s revision %q pinned %q", out.Hash, out.Pod.Annotations[AnnotationRevision], out.Pod.Annotations[AnnotationPinnedReason])
	}
	if again := s.Resolve(v1); again != out {
		t.Errorf("resolving the same pod again gave a new pointer")
	}
	if v1.Pod.Annotations[AnnotationRevision] != "" {
		t.Errorf("the source's pod was modified")
	}
	clk.Step(time.Minute)
	if got := s.Resolve(version(t, "1")).Pod.Annotations[AnnotationRevision]; got != "1" {
		t.Errorf("same spec read again: revision %s, want 1", got)
	}
	v2 := version(t, "2")
	if got := s.Resolve(v2).Pod.Annotations[AnnotationRevision]; got != "2" {
		t.Errorf("a spec change: revision %s, want 2", got)
	}
	h, _ := s.History(key)
	if len(h.Revisions) != 2 || string(h.Revisions[1].Content) != string(v2.Content) || !h.Revisions[1].Created.Equal(clk.Now()) {
		t.Fatalf("history %+v", h)
	}
	// Back to version 1: it becomes revision 3.
	s.Resolve(version(t, "1"))
	h, _ = s.History(key)
	if len(h.Revisions) != 2 || h.Revisions[0].Number != 2 || h.Revisions[1].Number != 3 || h.Revisions[1].Hash != v1.Hash {
		t.Errorf("after going back to version 1: %+v", h.Revisions)
	}
}

func TestLimitKeepsTheNewestAndThePinned(t *testing.T) {
	s, _ := open(t, t.TempDir(), 2)
	for i := 1; i <= 4; i++ {
		s.Resolve(version(t, fmt.Sprint(i)))
	}
	h, _ := s.History(key)
	if len(h.Revisions) != 2 || h.Revisions[0].Number != 3 {
		t.Fatalf("limit 2: kept %+v", numbers(h))
	}
	if _, err := s.Pin(key, 3); err != nil {
		t.Fatal(err)
	}
	s.Resolve(version(t, "4")) // still the pinned source version
	for i := 5; i <= 6; i++ {
		s.Resolve(version(t, fmt.Sprint(i)))
	}
	h, _ = s.History(key)
	if got := numbers(h); fmt.Sprint(got) != "[5 6]" {
		t.Errorf("after the pin ended: kept %v, want [5 6]", got)
	}
}

func numbers(h History) []int64 {
	var out []int64
	for _, r := range h.Revisions {
		out = append(out, r.Number)
	}
	return out
}

func TestRollBackPinsPreviousGoodUntilTheManifestChanges(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 5)
	v1, v2, v3 := version(t, "1"), version(t, "2"), version(t, "3")
	s.Resolve(v1)
	if err := s.MarkReady(key, v1.Hash); err != nil {
		t.Fatal(err)
	}
	s.Resolve(v2) // never Ready
	s.Resolve(v3)
	target, err := s.RollBack(key, v3.Hash, ReasonNotReady, "was not Ready within 10s")
	if err != nil || target.Number != 1 {
		t.Fatalf("RollBack: %+v, %v; want revision 1 (the last Ready one)", target, err)
	}
	out := s.Resolve(v3)
	if out.Hash != v1.Hash || out.Pod.Annotations[AnnotationRevision] != "1" ||
		out.Pod.Annotations[AnnotationPinnedReason] != ReasonNotReady {
		t.Fatalf("resolved while pinned: hash %s annotations %v", out.Hash, out.Pod.Annotations)
	}
	if _, err := s.RollBack(key, v3.Hash, ReasonNotReady, "again"); err == nil {
		t.Errorf("a second rollback while pinned succeeded")
	}

	// A restart keeps the pin and the failure.
	s2, _ := open(t, dir, 5)
	if out := s2.Resolve(version(t, "3")); out.Hash != v1.Hash {
		t.Fatalf("after reopening the store the failed revision runs again")
	}
	h, _ := s2.History(key)
	if h.Number(3).Failed == "" || h.Pin == nil || h.Pin.FailedRevision != 3 {
		t.Errorf("after reopening: %+v", h)
	}

	// A manifest change ends the pin.
	v4 := version(t, "4")
	if out := s2.Resolve(v4); out.Hash != v4.Hash || out.Pod.Annotations[AnnotationPinnedReason] != "" {
		t.Errorf("a new manifest still runs the pinned revision")
	}
	if h, _ := s2.History(key); h.Pin != nil {
		t.Errorf("pin kept after the manifest changed: %+v", h.Pin)
	}
}

func TestRollBackWithoutGoodRevision(t *testing.T) {
	s, _ := open(t, t.TempDir(), 5)
	v1, v2 := version(t, "1"), version(t, "2")
	s.Resolve(v1)
	s.Resolve(v2)
	if _, err := s.RollBack(key, v2.Hash, ReasonCrashLoop, "crash-looped"); !errors.Is(err, ErrNoGoodRevision) {
		t.Fatalf("RollBack with no Ready revision: %v, want ErrNoGoodRevision", err)
	}
	if out := s.Resolve(v2); out.Hash != v2.Hash {
		t.Errorf("the failed revision does not keep running")
	}
	if r, _ := s.Revision(key, v2.Hash); r.Failed == "" {
		t.Errorf("the failed revision is not marked failed")
	}
}

func TestManualPin(t *testing.T) {
	s, _ := open(t, t.TempDir(), 5)
	v1, v2, v3 := version(t, "1"), version(t, "2"), version(t, "3")
	for _, v := range []*manifest.StaticPod{v1, v2, v3} {
		s.Resolve(v)
	}
	r, err := s.Pin(key, 0)
	if err != nil || r.Number != 2 {
		t.Fatalf("Pin(0): %+v, %v; want revision 2", r, err)
	}
	if out := s.Resolve(v3); out.Hash != v2.Hash || out.Pod.Annotations[AnnotationPinnedReason] != ReasonManual {
		t.Fatalf("pinned revision 2 does not run")
	}
	if r, err := s.Pin(key, 0); err != nil || r.Number != 1 {
		t.Fatalf("Pin(0) again: %+v, %v; want revision 1", r, err)
	}
	if _, err := s.Pin(key, 9); err == nil {
		t.Errorf("Pin of a missing revision succeeded")
	}
	if _, err := s.Pin(key, 3); err != nil {
		t.Fatal(err)
	}
	if out := s.Resolve(v3); out.Hash != v3.Hash || out.Pod.Annotations[AnnotationPinnedReason] != "" {
		t.Errorf("pinning the manifest's own revision does not end the pin")
	}
}

func TestOpenIgnoresBadFiles(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"default_web-n1.json": "{not json", ".tmp-123": "x",
		"default_other-n1.json": `{"key":"default/web-n1","next":1,"revisions":[]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := open(t, dir, 5)
	if _, ok := s.History(key); ok {
		t.Errorf("a torn or misnamed file was loaded")
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-123")); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	if got := s.Resolve(version(t, "1")).Pod.Annotations[AnnotationRevision]; got != "1" {
		t.Errorf("revision %s after a torn file, want 1", got)
	}
}

func TestRequestAndResult(t *testing.T) {
	dir := t.TempDir()
	if err := WriteRequest(dir, key, Request{Key: key.String(), Revision: 2}); err != nil {
		t.Fatal(err)
	}
	reqs, err := TakeRequests(dir)
	if err != nil || len(reqs) != 1 || reqs[0].Revision != 2 || reqs[0].Key != key.String() {
		t.Fatalf("TakeRequests: %+v, %v", reqs, err)
	}
	if again, _ := TakeRequests(dir); len(again) != 0 {
		t.Errorf("a request was taken twice")
	}
	if _, ok, _ := TakeResult(dir, key); ok {
		t.Fatalf("a result before any answer")
	}
	if err := WriteResult(dir, key, Result{Key: key.String(), Revision: 2}); err != nil {
		t.Fatal(err)
	}
	if r, ok, err := TakeResult(dir, key); !ok || err != nil || r.Revision != 2 {
		t.Errorf("TakeResult: %+v %v %v", r, ok, err)
	}
}

// A manifest that carries the store's annotations (a pinned mirror's YAML
// saved as a manifest) does not look pinned: the store's values win.
func TestManifestCannotSetTheStoresAnnotations(t *testing.T) {
	s, _ := open(t, t.TempDir(), 5)
	v1 := version(t, "1")
	v1.Pod.Annotations[AnnotationRevision] = "7"
	v1.Pod.Annotations[AnnotationPinnedReason] = ReasonNotReady
	v1.Pod.Annotations[AnnotationPinnedMessage] = "revision 8 was not Ready within 2m"
	out := s.Resolve(v1)
	if a := out.Pod.Annotations; a[AnnotationRevision] != "1" || a[AnnotationPinnedReason] != "" || a[AnnotationPinnedMessage] != "" {
		t.Errorf("annotations of the resolved pod: %v", a)
	}
}

// TestResolveDoesNotWaitForTheDisk: while Run runs, a new revision is
// written after Resolve returns (Resolve holds the desired set's merge, and
// so every new pod's start and mirror); what is pending is on disk when
// Run returns.
func TestResolveDoesNotWaitForTheDisk(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 5)
	release, writing := make(chan struct{}), make(chan string, 10)
	write := s.saves.writeFile
	s.saves.writeFile = func(path string, data []byte) error {
		writing <- path
		<-release
		return write(path, data)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	waitFor(t, "Run to start", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.saves.async })
	resolved := make(chan *manifest.StaticPod, 1)
	go func() { resolved <- s.Resolve(version(t, "1")) }()
	select {
	case out := <-resolved:
		if out.Pod.Annotations[AnnotationRevision] != "1" {
			t.Errorf("revision %q, want 1", out.Pod.Annotations[AnnotationRevision])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Resolve waited for the history to be written")
	}
	<-writing // Run's goroutine writes it
	close(release)
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	h, err := ReadHistory(dir, key)
	if err != nil || len(h.Revisions) != 1 || h.Revisions[0].Number != 1 {
		t.Fatalf("on disk after Run: %v, %v; want revision 1", h, err)
	}
}

// TestOlderSnapshotNeverReplacesNewer: a history written late (Run's
// snapshot) never replaces a newer one written meanwhile (a pin).
func TestOlderSnapshotNeverReplacesNewer(t *testing.T) {
	s, _ := open(t, t.TempDir(), 5)
	path := filepath.Join(t.TempDir(), "h.json")
	if err := s.saves.write(path, 2, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := s.saves.write(path, 1, []byte("old")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "new" {
		t.Fatalf("file holds %q (%v), want the newer generation", b, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
