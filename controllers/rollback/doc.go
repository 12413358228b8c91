// Package rollback judges new revisions of static pods and rolls back the
// ones that fail, and applies the rollbacks users ask for.
//
// A static pod opts in with the mirrorlet.io/rollback-after annotation (a
// duration). Each new revision it gets (see package manifest/revisions) is
// judged from the status its mirror shows (podstatus.Of, computed from
// the runtime cache through the pod state store): a container in
// CrashLoopBackOff or a Failed pod rolls it back at once; at the end of
// the window (counted from when the revision appeared, from this
// mirrorlet's start, or from when its containers stopped waiting for the
// pods its mirrorlet.io/after names, whichever is latest: a restart never
// judges a pod before its probes ran, nor a start order before the
// containers started) a revision that is Ready (or Succeeded) is settled, one
// that is not is rolled back. Rolling back pins the newest earlier revision that was
// Ready and was never rolled back, records a RolledBack Warning Event on
// the mirror and counts mirrorlet_revision_rollbacks_total; the desired set
// then runs the pinned revision. The failed revision is not judged or run
// again until the manifest changes (which ends the pin). Pinned revisions
// are never judged: there is no rollback loop.
//
// The Controller also records, for every static pod, when a revision is
// Ready (the candidates for a rollback), and consumes the requests of
// mirrorlet rollback (revisions.Request files, polled every second).
//
// Data flow: it reads the desired set and the pod state store and writes
// pins into the revision store, which the desired set consults; it never
// touches the runtime or the API server.
package rollback
