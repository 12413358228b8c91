package fake

import (
	"context"
	"fmt"
	"time"

	"github.com/mirrorlet/mirrorlet/runtime"
)

// ExecFunc scripts what a command run by ExecSync does.
type ExecFunc func(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int32, err error)

// SetExec makes ExecSync call fn for commands in running containers (nil:
// every command exits 0 with no output).
func (r *Runtime) SetExec(fn ExecFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.execFn = fn
}

// ExecSync runs cmd in the running container containerID as the function
// given to SetExec says. A container that is not running is an error
// wrapping runtime.ErrNotFound, as a real runtime answers.
func (r *Runtime) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error) {
	r.mu.Lock()
	c := r.container(containerID)
	running := c != nil && c.State == runtime.ContainerRunning
	fn := r.execFn
	r.mu.Unlock()
	if !running {
		return nil, nil, 0, fmt.Errorf("exec in container %s: %w", containerID, runtime.ErrNotFound)
	}
	if fn == nil {
		return nil, nil, 0, nil
	}
	return fn(ctx, containerID, cmd, timeout)
}
