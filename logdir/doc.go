// Package logdir watches the pod log directory (--pod-logs-dir): whether
// it still takes container logs. The runtime writes container logs there
// and drops them silently when the file system is full or read-only; a
// Checker finds out (free space, and a one-byte write probe) every period
// and tells its subscribers when the answer changes, so that mirrorlet can
// say so on every mirror, in an Event and in its log. Running containers
// are never touched.
package logdir
