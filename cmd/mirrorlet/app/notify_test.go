package app_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/client-go/rest"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app/sdnotify"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

// TestNotifyReadyWithoutAPIServer runs mirrorlet as systemd would with
// Type=notify, with no API server: the node side runs pods without it, so
// READY=1 comes after the bounded wait, and STOPPING=1 at shutdown.
func TestNotifyReadyWithoutAPIServer(t *testing.T) {
	const deadline = 20 * time.Second
	dir, err := os.MkdirTemp("", "mirrorlet-notify-") // short: a socket path fits in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	t.Setenv("NOTIFY_SOCKET", sock)
	receive := func() string {
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

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			RestConfig:      &rest.Config{Host: "http://127.0.0.1:1"}, // refuses connections
			NodeName:        "notify-test",
			PodManifestPath: t.TempDir(), Runtime: fake.New(nil),
			HealthzBindAddress: "0", MetricsBindAddress: "0",
			NotifyMaxAPIWait: 100 * time.Millisecond,
			Log:              testr.New(t),
		})
	}()
	if got, want := receive(), "READY=1\nSTATUS="+sdnotify.StatusNoAPI; got != want {
		t.Errorf("first notification %q, want %q", got, want)
	}
	cancel()
	if got, want := receive(), "STOPPING=1\nSTATUS="+sdnotify.StatusStopping; got != want {
		t.Errorf("notification at shutdown %q, want %q", got, want)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(deadline):
		t.Errorf("Run did not return within %s of its context ending", deadline)
	}
}
