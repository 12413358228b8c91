// Package deploy tests what a node installs, as shipped: hack/install.sh
// into a temporary root (file tree, modes, a second run that keeps an edited
// config), the systemd units under `systemd-analyze verify`, the
// Dockerfile's build command (a static binary that knows its version), and
// the configuration files under mirrorlet's own loader and containerd's.
//
// The tests need Go and bash; those that need systemd-analyze or containerd
// skip with a message where these are missing (Debian packages systemd and
// containerd).
package deploy
