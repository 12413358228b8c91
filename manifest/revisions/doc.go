// Package revisions keeps the revisions of every static pod on disk and
// chooses which one runs.
//
// Every spec change of a static pod (a new spec hash from its source) is a
// revision: a number, counting up per pod from 1, the hash, the time it was
// first seen, where it came from and the manifest's content. A Store keeps
// the last N revisions of each pod in one file per pod under its directory
// (<namespace>_<name>.json), written atomically and durably as package
// lastgood writes (temporary file, fsync, rename, fsync of the directory).
// While Store.Run runs, the new revisions Resolve records are written by
// Run's goroutine, after the desired set's merge that asked for them, so
// that new pods never wait for the disk; pins and marks are written before
// their calls return.
//
// A pod may be pinned to an earlier revision: by hand (mirrorlet rollback,
// through a request file the daemon consumes, see Request) or by the
// automatic rollback of a revision that did not become Ready in time. A pin
// names the source version it replaces; it ends by itself when the source
// provides another version (the manifest changed), and the user's manifest
// is never rewritten. Pins survive restarts with the rest of the file.
//
// The Store sits between the sources and the desired set: the desired set
// asks it (Resolve) which version of each source pod to run, and it records
// new revisions as it sees them. The pod it returns carries the running
// revision in the mirrorlet.io/revision annotation and, when pinned, why in
// mirrorlet.io/pinned-reason and mirrorlet.io/pinned-message, which the
// mirror shows as its mirrorlet.io/RolledBack condition.
package revisions
