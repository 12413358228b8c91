// Package manifest turns static pod manifests into StaticPods: it decodes a
// Pod from YAML or JSON, applies the defaults the API server would, gives the
// pod its node identity (name "<name>-<node>", namespace, node name,
// toleration, config annotations) and computes its spec hash.
//
// The spec hash covers what needs a restart when it changes: the defaulted
// spec, the pod's name and namespace, the node and the source path. Labels
// and annotations are not part of it, so editing them never restarts a pod.
// The hash is the pod's UID on the node and the value of the
// kubernetes.io/config.hash and kubernetes.io/config.mirror annotations.
//
// Sources that read manifests live in sub-packages (manifest/dirsource);
// manifest/desired merges what they publish. Nothing here knows about
// controllers or the API server.
package manifest
