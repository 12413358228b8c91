// Package podstate keeps what the static pod reconciler last observed on the
// node for every static pod: the runtime's sandbox and containers, and why a
// container is not running when it should be. The mirror reconciler turns it
// into pod status. It holds no Kubernetes API client.
package podstate
