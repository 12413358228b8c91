// Package lastgood keeps the last good content of every static pod manifest
// on disk, so that a mirrorlet that restarts and finds a manifest now
// invalid (or its manifest URL unreachable) keeps running the version that
// ran before, exactly as it would have without the restart.
//
// A Store is a directory holding one file per entry, keyed by a source's
// own key (a manifest path, or a URL and pod name). Writes are atomic and
// durable: a temporary file is written, fsynced and renamed over the old
// one, and the directory is fsynced, so a crash or power loss leaves either
// the old or the new version, never a torn one. Writing the same content
// again costs no disk write.
package lastgood
