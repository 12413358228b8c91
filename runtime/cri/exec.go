package cri

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// execSlack is how long an ExecSync call may take beyond the command's own
// timeout before mirrorlet gives up on the runtime's answer.
const execSlack = 10 * time.Second

// containerd 1.6 reports an exec timeout as "timeout 1s exceeded" with code
// Unknown; 2.x with DeadlineExceeded.
var execTimeoutMessage = regexp.MustCompile(`timeout \S+ exceeded`)

// ExecSync runs cmd in the running container containerID and returns its
// stdout, stderr and exit code. The runtime kills a command that runs longer
// than timeout (rounded up to whole seconds, at least 1 s); that is an error
// wrapping mruntime.ErrExecTimeout. A missing container is an error wrapping
// mruntime.ErrNotFound.
func (r *Runtime) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error) {
	secs := max(int64(math.Ceil(timeout.Seconds())), 1)
	cctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+execSlack)
	defer cancel()
	resp, err := r.rt.ExecSync(cctx, &runtimeapi.ExecSyncRequest{ContainerId: containerID, Cmd: cmd, Timeout: secs})
	if err != nil {
		if isExecTimeout(err) && ctx.Err() == nil {
			return nil, nil, 0, fmt.Errorf("exec %q in container %s: %w after %ds: %w", cmd, containerID, mruntime.ErrExecTimeout, secs, err)
		}
		return nil, nil, 0, fmt.Errorf("exec %q in container %s: %w", cmd, containerID, wrapNotFound(err))
	}
	return resp.Stdout, resp.Stderr, resp.ExitCode, nil
}

func isExecTimeout(err error) bool {
	return status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) ||
		execTimeoutMessage.MatchString(status.Convert(err).Message())
}
