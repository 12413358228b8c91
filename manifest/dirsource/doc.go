// Package dirsource reads static pod manifests from a directory (the
// kubelet's --pod-manifest-path) and publishes them as whole snapshots.
//
// Every regular file whose name does not start with "." and ends in .yaml,
// .yml or .json is one Pod. Other files (editor swap files, foo.yaml.bak) are
// skipped and logged once at V(1). Changes are seen through fsnotify, with a
// short debounce that folds bursts (editor save sequences, write-then-rename)
// into one rescan, and a full rescan every CheckFrequency as a safety net.
//
// Bad input never loses a running pod: a file that turns invalid keeps its
// last good version in the snapshot, with the problem reported next to it; a
// directory that cannot be read publishes nothing, so the previous snapshot
// stays in force.
package dirsource
