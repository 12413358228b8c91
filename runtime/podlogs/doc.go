// Package podlogs reads container logs from the node's disk, the way
// `kubectl logs` shows them, without a container runtime or an API server.
//
// runtime/cri has the runtime write each container attempt's output to
// (PodDir and AttemptPath, the one definition of this layout)
//
//	<podLogsDir>/<namespace>_<pod>_<uid>/<container>/<attempt>.log
//
// where pod is the mirror name (<static pod>-<node>), in the CRI log format:
// one line per write, "<RFC3339Nano time> <stdout|stderr> <F|P> <content>",
// P marking a piece of a longer line that the following lines complete.
// Find locates a container's directory (newest pod instance, by its newest
// log file); Print writes the latest or previous attempt and, with Follow,
// keeps reading as the file grows and moves on to the next attempt when the
// container restarts, until its context ends or the pod's logs are removed.
//
// Options select as PodLogOptions do (Tail, Since, LimitBytes, Stream,
// Timestamps); `mirrorlet logs` and the node API's /containerLogs (kubectl
// logs) both print through Print, so both show the same.
//
// Lines not in the CRI format are printed as they are. The package only
// reads files: it never writes, rotates or removes them.
package podlogs
