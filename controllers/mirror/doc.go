// Package mirror is the mirror reconciler: for every static pod it keeps a
// read-only mirror Pod in the API server, named like the static pod, and it
// is the only writer of mirror pods in the API.
//
// Mirrors are written with server-side apply, field manager "mirrorlet"
// (FieldManager): mirrorlet owns the manifest's labels, annotations, the
// Node owner reference and the spec, and nothing else. Fields others add
// (a mutating webhook's or policy's labels, annotations, tolerations,
// containers) belong to them and are left alone.
//
// For each key (namespace/name) it compares the desired set and the runtime
// state with the mirror in the cache (scoped to pods on this node), looking
// only at the fields mirrorlet owns (corev1ac.ExtractPod):
//
//   - no mirror: apply it (which creates it), then write its status;
//   - config.mirror hash differs, deletionTimestamp set, a spec field
//     mirrorlet set was changed by someone else, or mirrorlet owns no
//     field of it: delete it (UID precondition) and create it again;
//   - labels, annotations or owner mirrorlet set differ: apply again, in
//     place (a metadata-only manifest edit, or an edit made through the
//     API). When the API server refuses to let this identity patch pods at
//     all (a system:node:<name> identity under the Node authorizer and
//     NodeRestriction, which allow nodes only to create and delete pods),
//     the reconciler says so once and from then on creates mirrors with a
//     plain create (same field manager) and makes metadata changes by
//     delete (UID precondition) + create, as for a spec change;
//   - a write whose result still differs (admission changes a field the
//     manifest sets, on every write) is reported once (Event
//     MutatedMirrorPod) and not repeated until the manifest changes: no
//     write loop;
//   - a pod that holds the mirror's name and is not this node's mirror is
//     reported (Event on the Node, `mirrorlet status`) and retried slowly;
//   - no static pod but a mirror: delete it (orphan), once every source has
//     published;
//   - status differs from what runs on the node: write pods/status; never
//     before the runtime state is known (a mirror that shows a status keeps
//     it until then, e.g. right after a restart).
//
// Node events wake mirrors only when what mirrors carry from the Node (its
// UID, its InternalIP) changes, not on heartbeats.
//
// The status itself is computed by package podstatus.
//
// Nothing read here starts or stops a container.
package mirror
