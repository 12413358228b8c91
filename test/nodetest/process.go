package nodetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Process is one binary run by a test, its output in a log file.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	log     *os.File
	exited  chan struct{}
}

// StartProcess starts bin with args, appending its output to logPath.
func StartProcess(name, logPath, bin string, args ...string) (*Process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, log: log, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitCode is the exit code once the process has exited (-1 when killed
// by a signal or still running).
func (p *Process) ExitCode() int {
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Stop sends sig and waits up to 30 s for the process to exit, then kills
// it. It is safe to call more than once.
func (p *Process) Stop(sig syscall.Signal) error {
	if p == nil {
		return nil
	}
	defer func() { _ = p.log.Close() }()
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not exit within 30s of %s", p.Name, sig)
	}
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("<reading %s: %v>", p.LogPath, err)
	}
	lines := strings.Split(string(data), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// WaitLog waits until the process's log contains sub.
func (p *Process) WaitLog(ctx context.Context, timeout time.Duration, sub string) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(p.LogPath)
		return err == nil && strings.Contains(string(data), sub), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %q in the log of %s: %w", sub, p.Name, err)
	}
	return nil
}

// Pid is the process's pid.
func (p *Process) Pid() int { return p.cmd.Process.Pid }
