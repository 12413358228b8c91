// Package contentwatch watches the content of host files and directories
// for the static pods that opted in to restarts on change
// (mirrorlet.io/restart-on-change), and says, per pod version, when and
// which of them changed.
//
// It hashes content, not metadata: a touch or a chmod changes nothing, a
// rewrite with other bytes does. A file is read through its symlinks, so
// the two ways certificates are renewed on a node are seen: a new file
// renamed over the old one (kubeadm), and a "..data" symlink swapped to a
// new directory (the Kubernetes atomic writer, cert-manager). A directory's
// hash covers every regular file under it (symlinks to files followed),
// skipping the atomic writer's own "..*" entries, so a swap that changes
// no content changes nothing.
//
// Changes are noticed through inotify (fsnotify) on the directories that
// hold the watched paths (and on the watched directories themselves), and
// by a periodic check that catches what inotify misses (a path behind a
// symlink elsewhere, a directory created later). The inotify instance is
// started when a pod first watches a path and closed when none watches any
// more, so an agent whose pods do not opt in holds none (the user's
// fs.inotify.max_user_instances is 128 by default). Both only mark a path
// dirty: the hashes are compared once the path has been quiet for the
// debounce period (bounded by MaxDelay), so a burst of writes (a
// certificate and its key, several files renewed in a row) is one change.
//
// A path that is missing (removed, or mid-swap) is no change: the pod
// keeps running on what it has, and when the path is back its content is
// compared with what the pod last ran with. The baseline of a pod version
// is the content when it was first watched (when its worker first synced),
// then the content of each change. With a StateDir it is saved there, so
// that after a restart of mirrorlet a change made while it was stopped is
// a change, and content that did not change is none: a restart of
// mirrorlet alone never restarts a pod.
//
// The watcher calls OnChange and the pod worker reads Changed: it never
// acts on the runtime itself.
package contentwatch
