// Package dirsource reads static pod manifests from a directory (the
// kubelet's --pod-manifest-path) and publishes them as whole snapshots.
//
// Every regular file whose name does not start with "." and ends in .yaml,
// .yml or .json is one Pod. Other files (editor swap files, foo.yaml.bak) are
// skipped and logged once at V(1). Changes are seen through inotify
// (k8s.io/utils/inotify: fsnotify does not expose IN_CLOSE_WRITE). A
// manifest its writer is done with (IN_CLOSE_WRITE after writing it,
// IN_MOVED_TO when renamed into place) is read and published at once; a
// file still being written is never read, so a half-written manifest is
// neither reported nor run, even when its first half happens to load. Every
// other change (created, removed, renamed away, mode changed) and any
// further write to a file already read in the same burst waits for a short
// debounce and a full rescan, which folds editor save sequences and bursts;
// a full rescan every CheckFrequency is the safety net (inotify's queue
// overflow drops events silently). A read decodes a file only when its
// bytes changed since it was last read: the source keeps a SHA-256 of each
// file's content with what it loaded to (the static pod, or the error), so
// a rescan of 1,000 unchanged manifests reads them but decodes none. The
// content is compared, not the modification time, whose granularity can
// hide an edit.
//
// Bad input never loses a running pod: a file that turns invalid keeps its
// last good version in the snapshot, with the problem reported next to it; a
// directory that cannot be read publishes nothing, so the previous snapshot
// stays in force.
package dirsource
