package logdir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, dir, want string
	}{
		{"writable", dir, ""},
		{"missing", filepath.Join(dir, "missing"), "no such file"},
		{"a file, not a directory", writeFile(t, dir, "file"), "not writable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.dir)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Check(%s) = %v, want %q", tc.dir, err, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the probe left files: %v", entries)
	}
}

func writeFile(t *testing.T, dir, name string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Subscribers hear of the first result and of every change, not of
// checks that find the same.
func TestSubscribersHearChanges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	c, err := New(Config{Dir: dir, Period: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	c.Subscribe(func() { calls.Add(1) })
	go c.Run(t.Context())
	waitFor(t, "the missing directory reported", func() bool { return calls.Load() == 1 && c.Problem() != nil })
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the recovery reported", func() bool { return calls.Load() == 2 && c.Problem() == nil })
	<-time.After(50 * time.Millisecond) // five more checks that find the same
	if n := calls.Load(); n != 2 {
		t.Errorf("%d notifications, want 2", n)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 5*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}
