package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestLogs reads a static pod's logs on the node as a user does, with
// `mirrorlet logs` and no API server: by the static pod's own name,
// following while requests come in and through a restart of the container,
// and the previous attempt once the container was killed.
func TestLogs(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	n.writeManifest("static-web.yaml", webPod("static-web", port))
	m := n.waitRunning("static-web", 2*time.Minute)
	starting := fmt.Sprintf("webserver starting on port %d", port)
	eventually(t, 30*time.Second, "the starting line in mirrorlet logs", func() bool {
		out, err := mirrorletLogs(n, "static-web")
		return err == nil && strings.Contains(out, starting)
	})

	f := followLogs(t, n, "static-web")
	eventually(t, 30*time.Second, "the starting line in the followed logs", func() bool {
		return strings.Contains(f.output(), starting)
	})
	eventually(t, 30*time.Second, "the server answering", func() bool {
		_, err := get(port, "/marker-xyz")
		return err == nil
	})
	eventually(t, 30*time.Second, "the request in the followed logs", func() bool {
		return strings.Contains(f.output(), "request GET /marker-xyz")
	})

	// The container is killed and restarted: following goes on with the
	// new attempt; --previous shows the first.
	ctr(t, "tasks", "kill", "-s", "SIGKILL", containerID(m.Status.ContainerStatuses[0].ContainerID))
	eventually(t, time.Minute, "restartCount 1", func() bool {
		m = n.mirror("static-web")
		return m != nil && len(m.Status.ContainerStatuses) == 1 && m.Status.ContainerStatuses[0].RestartCount == 1
	})
	eventually(t, 30*time.Second, "the restarted server answering", func() bool {
		_, err := get(port, "/after-restart")
		return err == nil
	})
	eventually(t, 30*time.Second, "the new attempt in the followed logs", func() bool {
		out := f.output()
		return strings.Count(out, starting) == 2 && strings.Contains(out, "request GET /after-restart")
	})
	if out := f.output(); strings.Index(out, "request GET /marker-xyz") > strings.LastIndex(out, starting) {
		t.Fatalf("followed output out of order:\n%s", out)
	}
	prev, err := mirrorletLogs(n, n.mirrorName("static-web"), "--previous")
	if err != nil || !strings.Contains(prev, starting) || !strings.Contains(prev, "request GET /marker-xyz") {
		t.Fatalf("logs --previous (%v):\n%s\nwant the first attempt's start and request", err, prev)
	}
	latest, err := mirrorletLogs(n, "static-web")
	if err != nil || !strings.HasPrefix(latest, starting) || strings.Contains(latest, "/marker-xyz") ||
		!strings.Contains(latest, "request GET /after-restart") {
		t.Fatalf("logs (%v):\n%s\nwant the second attempt's content only", err, latest)
	}
	last, err := mirrorletLogs(n, "static-web", "--tail", "1", "--timestamps")
	if err != nil || !lastLine.MatchString(last) {
		t.Fatalf("logs --tail 1 --timestamps (%v):\n%q\nwant one line matching %s", err, last, lastLine)
	}
	f.interrupt(t)
}

// lastLine is the last line of the second attempt with its time.
var lastLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) request GET /after-restart\n$`)

// mirrorletLogs runs `mirrorlet logs POD args...` for node n; on error the
// output holds stderr too.
func mirrorletLogs(n *node, pod string, args ...string) (string, error) {
	args = append([]string{"logs", pod, "--pod-logs-dir", n.logs, "--node-name", n.name}, args...)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("mirrorlet %s: %w", strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

// followedLogs is a running `mirrorlet logs -f`.
type followedLogs struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	stderr bytes.Buffer
	exited chan struct{}
	err    error
}

// followLogs starts `mirrorlet logs -f POD` for node n; it is killed when
// the test ends, at the latest after 5 minutes.
func followLogs(t *testing.T, n *node, pod string) *followedLogs {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	f := &followedLogs{exited: make(chan struct{})}
	f.cmd = exec.CommandContext(ctx, binary, "logs", pod, "-f", "--pod-logs-dir", n.logs, "--node-name", n.name)
	f.cmd.Stderr = &f.stderr
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = io.Copy(f, stdout)
		f.err = f.cmd.Wait()
		close(f.exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-f.exited
		if t.Failed() {
			t.Logf("mirrorlet logs -f output:\n%s\nstderr:\n%s", f.output(), f.stderr.String())
		}
	})
	return f
}

func (f *followedLogs) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.Write(p)
}

func (f *followedLogs) output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

// interrupt sends SIGINT, as Ctrl-C does, and checks that it ends cleanly.
func (f *followedLogs) interrupt(t *testing.T) {
	t.Helper()
	_ = f.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-f.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("mirrorlet logs -f did not exit within 10s of SIGINT")
	}
	if f.err != nil {
		t.Fatalf("mirrorlet logs -f after SIGINT: %v\n%s", f.err, f.stderr.String())
	}
}
