// Package mirror is the mirror reconciler: for every static pod it keeps a
// read-only mirror Pod in the API server, named like the static pod, and it
// is the only writer of pods in the API.
//
// For each key (namespace/name) it compares the desired set and the runtime
// state with the mirror in the cache (scoped to pods on this node):
//
//   - no mirror: create it, then write its status;
//   - config.mirror hash differs, deletionTimestamp set, or the spec was
//     edited through the API: delete it (UID precondition) and create it
//     again;
//   - labels, annotations or owner differ: patch them back in place (a
//     metadata-only manifest edit, or an edit made through the API). When
//     the API server refuses to let this identity patch pods at all (a
//     system:node:<name> identity under the Node authorizer and
//     NodeRestriction, which allow nodes only to create and delete pods),
//     the reconciler says so once and from then on makes metadata changes
//     by delete (UID precondition) + create, as for a spec change;
//   - no static pod but a mirror: delete it (orphan), once every source has
//     published;
//   - status differs from what runs on the node: write pods/status.
//
// Nothing read here starts or stops a container.
package mirror
