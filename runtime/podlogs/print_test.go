package podlogs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

func TestPrint(t *testing.T) {
	lines := []string{
		"2026-07-01T12:00:00.5Z stdout F one",
		"2026-07-01T12:00:01Z stderr P tw",
		"2026-07-01T12:00:02Z stderr F o",
		"garbage line",
		"2026-07-01T12:00:03Z stdout F three",
	}
	for _, tc := range []struct {
		name string
		o    Options
		last string // written after lines, without a newline
		want string
	}{
		{name: "content only", o: Options{Tail: -1}, want: "one\ntwo\ngarbage line\nthree\n"},
		{name: "timestamps", o: Options{Tail: -1, Timestamps: true},
			want: "2026-07-01T12:00:00.500000000Z one\n2026-07-01T12:00:01.000000000Z two\ngarbage line\n2026-07-01T12:00:03.000000000Z three\n"},
		{name: "tail 2", o: Options{Tail: 2}, want: "garbage line\nthree\n"},
		{name: "tail counts joined lines", o: Options{Tail: 3}, want: "two\ngarbage line\nthree\n"},
		{name: "tail 0", o: Options{Tail: 0}, want: ""},
		{name: "tail more than there is", o: Options{Tail: 10}, want: "one\ntwo\ngarbage line\nthree\n"},
		{name: "last line without newline", o: Options{Tail: 1}, last: "2026-07-01T12:00:04Z stdout F four", want: "four\n"},
		{name: "previous attempt", o: Options{Tail: -1, Previous: true}, want: "attempt 0\n"},
		{name: "previous never follows", o: Options{Tail: -1, Previous: true, Follow: true}, want: "attempt 0\n"},
		{name: "since", o: Options{Tail: -1, Since: time.Date(2026, 7, 1, 12, 0, 1, 0, time.UTC)},
			want: "two\ngarbage line\nthree\n"},
		{name: "since then tail", o: Options{Tail: 1, Since: time.Date(2026, 7, 1, 12, 0, 2, 0, time.UTC)}, want: "three\n"},
		{name: "stderr only", o: Options{Tail: -1, Stream: "stderr"}, want: "two\n"},
		{name: "limit bytes cuts a line", o: Options{Tail: -1, LimitBytes: 6}, want: "one\ntw"},
		{name: "limit bytes counts timestamps", o: Options{Tail: -1, Timestamps: true, LimitBytes: 10}, want: "2026-07-01"},
		{name: "limit bytes ends following", o: Options{Tail: -1, LimitBytes: 4, Follow: true}, want: "one\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			logFile(t, dir, "default_web-n_u", "web", 0, "2026-07-01T11:00:00Z stdout F attempt 0")
			path := logFile(t, dir, "default_web-n_u", "web", 1, lines...)
			if tc.last != "" {
				appendTo(t, path, tc.last)
			}
			c := find(t, dir)
			var out bytes.Buffer
			if err := Print(t.Context(), &out, c, tc.o); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", out.String(), tc.want)
			}
		})
	}
}

// TestFollow follows a container through appended lines, a line written
// in two goes, a restart (new attempt file), a truncation and a rotation,
// until its pod's logs are removed.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	first := logFile(t, dir, "default_web-n_u", "web", 0,
		"2026-07-01T12:00:00Z stdout F old",
		"2026-07-01T12:00:01Z stdout F start")
	c := find(t, dir)
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Print(t.Context(), out, c, Options{Tail: 1, Follow: true, Interval: 5 * time.Millisecond})
	}()
	waitOutput(t, out, "start\n")

	// A file line written in two goes, then a line in two pieces.
	appendTo(t, first, "2026-07-01T12:00:02Z stdout F appended\n2026-07-01T12:00:03Z stdout F ha")
	waitOutput(t, out, "start\nappended\n")
	appendTo(t, first, "lf\n2026-07-01T12:00:04Z stdout P pie\n")
	waitOutput(t, out, "start\nappended\nhalf\n")
	appendTo(t, first, "2026-07-01T12:00:05Z stdout F ce\n")
	waitOutput(t, out, "start\nappended\nhalf\npiece\n")

	// The container restarts: the old file's last lines, then the new one.
	appendTo(t, first, "2026-07-01T12:00:05Z stdout F last words\n")
	second := logFile(t, dir, "default_web-n_u", "web", 1, "2026-07-01T12:01:00Z stdout F restarted")
	want := "start\nappended\nhalf\npiece\nlast words\nrestarted\n"
	waitOutput(t, out, want)
	appendTo(t, first, "2026-07-01T12:00:06Z stdout F too late\n")
	appendTo(t, second, "2026-07-01T12:01:01Z stdout F running\n")
	want += "running\n"
	waitOutput(t, out, want)

	// Truncated: read again from the start.
	if err := os.WriteFile(second, []byte("2026-07-01T12:02:00Z stdout F x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want += "x\n"
	waitOutput(t, out, want)

	// Rotated: the old file's end, then the new file.
	appendTo(t, second, "2026-07-01T12:02:01Z stdout F before rotation\n")
	waitOutput(t, out, want+"before rotation\n")
	if err := os.Rename(second, second+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, second+".1", "2026-07-01T12:02:02Z stdout F end of rotated\n")
	appendTo(t, second, "2026-07-01T12:02:03Z stdout F after rotation\n")
	want += "before rotation\nend of rotated\nafter rotation\n"
	waitOutput(t, out, want)

	// The pod is removed: following ends.
	if err := os.RemoveAll(filepath.Join(dir, "default_web-n_u")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("following did not end when the pod's logs were removed")
	}
	if out.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", out.String(), want)
	}
}

func TestFollowEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	logFile(t, dir, "default_web-n_u", "web", 0, "2026-07-01T12:00:00Z stdout F hi")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	out := &syncBuffer{}
	go func() { done <- Print(ctx, out, find(t, dir), Options{Tail: -1, Follow: true}) }()
	waitOutput(t, out, "hi\n")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("following did not end with its context")
	}
}

func find(t *testing.T, dir string) *Container {
	t.Helper()
	c, err := Find(Query{LogsDir: dir, Namespace: "default", Pod: "web", Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// waitOutput waits until out holds exactly want.
func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return out.String() == want, nil })
	if err != nil {
		t.Fatalf("output\n%q\nwant\n%q", out.String(), want)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
