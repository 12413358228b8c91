package podlogs

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// PodDir is the log directory of one pod instance under podLogsDir:
// <namespace>_<pod>_<uid>. The runtime writes there; Find reads it back.
func PodDir(podLogsDir, namespace, pod, uid string) string {
	return filepath.Join(podLogsDir, fmt.Sprintf("%s_%s_%s", namespace, pod, uid))
}

// AttemptPath is the log file of one container attempt, relative to its
// pod's directory: <container>/<attempt>.log.
func AttemptPath(container string, attempt uint32) string {
	return filepath.Join(container, strconv.FormatUint(uint64(attempt), 10)+".log")
}
