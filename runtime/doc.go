// Package runtime defines what mirrorlet needs from a container runtime to run
// static pods on the node, and the state it reads back.
//
// The model follows the CRI: a pod is one sandbox plus containers; a container
// is created and started for one attempt and, once exited, stays listed until
// it is removed, so the caller can report its last state; a container that
// failed to start stays as an exited attempt (StartError). Pod data (volumes,
// logs, termination messages) outlives sandboxes: only RemovePodData removes
// it, once the pod itself is gone. Implementations are mechanical: they do
// what they are told and report what exists. Policy (what to start, when to
// restart, back-off) lives in the pod workers (controllers/staticpod), the
// only callers that change runtime state; the runtime cache (runtime/pleg) is
// the only caller of ListPods.
//
// Implementations live in sub-packages: runtime/fake (in memory, for tests and
// for running the binary without a node runtime) and runtime/cri (CRI v1 over
// gRPC, containerd or CRI-O). Nothing here talks to the Kubernetes API server.
package runtime
