package runtime

import "errors"

// ErrExecTimeout marks (wrapped) a command run in a container that did not
// finish within its timeout; the runtime killed it.
var ErrExecTimeout = errors.New("exec timed out")
