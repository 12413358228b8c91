// Package pleg is mirrorlet's runtime cache, the kubelet's "pod lifecycle
// event generator": the only reader of the runtime's pod list.
//
// One loop (Cache.Run) relists the runtime — all of it every RelistPeriod
// (1 s; longer while the runtime streams its own events), and just the pods
// that changed when the runtime's Changes channel names them or a worker
// asks. Each relist replaces the cache's entries (the sandboxes and
// containers of each pod UID), diffs them against the previous ones and
// calls subscribers with the UIDs that changed, so only the worker of a pod
// that changed wakes. A relist costs O(pods): one list call and one compare
// per pod.
//
// Every refresh is numbered when it starts. A pod worker that just acted
// takes Mark and calls WaitNewer: it returns once a refresh that started
// after the action has covered the worker's pods, so the worker never
// decides on a cache older than its last action (the kubelet's pod cache
// GetNewerThan). Readers get copies; the cache is safe for concurrent use.
package pleg
