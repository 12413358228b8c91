package podstatus

import corev1 "k8s.io/api/core/v1"

// ConditionLogsWritable is False on every mirror while the pod log
// directory does not take container logs (full or not writable); the
// containers keep running, their logs are lost meanwhile.
const ConditionLogsWritable corev1.PodConditionType = "mirrorlet.io/LogsWritable"

// LogDirStatus tells whether the pod log directory takes container logs
// (package logdir's Checker).
type LogDirStatus interface {
	// Problem is nil while the directory takes logs, else why it does
	// not. Safe for concurrent use.
	Problem() error
	// Subscribe calls f, which must not block, after every change of
	// Problem until cancel is called.
	Subscribe(f func()) (cancel func())
}

// logsCondition is the LogsWritable condition from the directory's state.
func logsCondition(logs LogDirStatus) corev1.PodCondition {
	if err := logs.Problem(); err != nil {
		return corev1.PodCondition{Type: ConditionLogsWritable, Status: corev1.ConditionFalse,
			Reason: "LogDirectoryUnwritable", Message: err.Error()}
	}
	return corev1.PodCondition{Type: ConditionLogsWritable, Status: corev1.ConditionTrue}
}
