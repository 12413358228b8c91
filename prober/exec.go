package prober

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// execProbe runs cmd in the container: exit code 0 succeeds; its output
// (stdout then stderr, at most maxOutput bytes) is the probe's output. A
// command that runs past its timeout fails.
func (m *Manager) execProbe(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (result, string, error) {
	stdout, stderr, code, err := m.cfg.Execer.ExecSync(ctx, containerID, cmd, timeout)
	switch {
	case errors.Is(err, mruntime.ErrExecTimeout):
		return failure, fmt.Sprintf("command %q timed out", strings.Join(cmd, " ")), nil
	case err != nil:
		return unknown, "", err
	}
	out := slices.Concat(stdout, stderr)
	if len(out) > maxOutput {
		out = out[:maxOutput]
	}
	if code != 0 {
		return failure, string(out), nil
	}
	return success, string(out), nil
}
