// Package desired holds the desired set: every static pod that should run on
// the node, merged from all manifest sources and keyed by the pod's
// namespace/name ("<name>-<node>").
//
// Sources publish whole snapshots; the set diffs them and notifies
// subscribers of the keys that changed. Notifications never block the
// publisher, so a stalled consumer (say, an API-side controller waiting for
// an unreachable API server) never holds back the node.
//
// A set is Synced once every source it was created with has published at
// least once. Until then consumers must not treat a missing key as "remove
// this pod": the source may simply not have read its manifests yet.
package desired
