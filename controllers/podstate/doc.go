// Package podstate keeps what the static pod workers last observed on the
// node for every static pod: the runtime's sandbox and containers (kept,
// with their final states, after the sandbox of a finished pod is stopped),
// why a container is not running when it should be, and what the probes say
// of the running ones. The mirror reconciler turns it
// into pod status. It holds no Kubernetes API client.
package podstate
