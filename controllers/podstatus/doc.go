// Package podstatus computes the status a static pod's mirror shows from
// what runs on the node (the pod state the pod workers publish): phase,
// conditions (including mirrorlet's ManifestValid, LogsWritable and
// RolledBack), container states, restart counts and readiness. The mirror
// reconciler writes it to the API server; the node API's /pods and the
// rollback controller read it without the API server.
package podstatus
