package sdnotify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	clocktesting "k8s.io/utils/clock/testing"
)

const deadline = 10 * time.Second

// listen sets NOTIFY_SOCKET to a unixgram socket for the test and returns
// it. The directory is short: a socket path must fit in 108 bytes.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdnotify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// receive returns the next datagram, failing the test after deadline.
func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(deadline)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification within %s: %v", deadline, err)
	}
	return string(buf[:n])
}

func expect(t *testing.T, got string, want ...string) {
	t.Helper()
	lines := strings.Split(got, "\n")
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("notification %q, want %q", got, strings.Join(want, "\n"))
	}
}

// start runs n until the test ends or the returned cancel is called, and
// fails the test if Run does not return within deadline after that.
func start(t *testing.T, n *Notifier) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(deadline):
			t.Errorf("Run did not return within %s of its context ending", deadline)
		}
	})
	return cancel
}

// waitForTimer waits until Run waits on the fake clock.
func waitForTimer(t *testing.T, clk *clocktesting.FakeClock) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	timeout := time.After(deadline)
	for !clk.HasWaiters() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("Run did not start waiting for the API within %s", deadline)
		}
	}
}

func TestReadyWhenAPISynced(t *testing.T) {
	conn := listen(t)
	clk := clocktesting.NewFakeClock(time.Now())
	n := New(Config{Clock: clk, Log: testr.New(t)})
	n.APISynced()
	n.APISynced() // twice is fine
	cancel := start(t, n)
	expect(t, receive(t, conn), "READY=1", "STATUS="+StatusSynced)
	cancel()
	expect(t, receive(t, conn), "STOPPING=1", "STATUS="+StatusStopping)
}

func TestReadyWithoutAPIAfterMaxWait(t *testing.T) {
	conn := listen(t)
	clk := clocktesting.NewFakeClock(time.Now())
	n := New(Config{Clock: clk, MaxAPIWait: time.Minute, Log: testr.New(t)})
	cancel := start(t, n)
	waitForTimer(t, clk)
	clk.Step(time.Minute - time.Nanosecond)
	if err := conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 4096)); err == nil {
		t.Fatal("notified before MaxAPIWait passed")
	}
	clk.Step(time.Nanosecond)
	expect(t, receive(t, conn), "READY=1", "STATUS="+StatusNoAPI)
	n.APISynced() // the API server comes back
	expect(t, receive(t, conn), "STATUS="+StatusSynced)
	cancel()
	expect(t, receive(t, conn), "STOPPING=1", "STATUS="+StatusStopping)
}

func TestStoppingBeforeReady(t *testing.T) {
	conn := listen(t)
	n := New(Config{Clock: clocktesting.NewFakeClock(time.Now()), Log: testr.New(t)})
	cancel := start(t, n)
	cancel()
	expect(t, receive(t, conn), "STOPPING=1", "STATUS="+StatusStopping)
}

func TestNoSocketIsNoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := New(Config{Log: testr.New(t)})
	n.APISynced()
	done := make(chan error, 1)
	go func() { done <- n.Run(t.Context()) }() // t.Context ends only after the test
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(deadline):
		t.Fatal("Run without NOTIFY_SOCKET did not return at once")
	}
}
