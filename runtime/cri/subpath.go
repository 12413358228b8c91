package cri

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// errSubPathEscapes marks a subPath that leads out of its volume.
var errSubPathEscapes = errors.New("leads out of the volume")

// resolveSubPath returns the host path of sub inside the volume directory
// root, creating missing directories on the way, without ever following a
// symlink (or "..") out of root: the container owns the volume's contents
// and may have planted a symlink to the host's /etc there (the kubelet's
// CVE-2017-1002101 class). Every step is resolved by the kernel with
// openat2(RESOLVE_BENEATH), and the path returned is the one the kernel
// found, so a symlink inside the volume that stays inside it still works.
//
// What remains: the returned path is handed to the runtime, which mounts
// it later; a container that swaps a directory for a symlink in between
// could still win that race. The kubelet closes it by bind-mounting the
// opened file descriptor; mirrorlet does not yet.
func resolveSubPath(root, sub string) (string, error) {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("opening volume directory %s: %w", root, err)
	}
	defer func() { _ = unix.Close(rootFD) }()
	clean := filepath.Clean(sub)
	fd, err := openBeneath(rootFD, clean)
	if errors.Is(err, unix.ENOENT) {
		if err = mkdirBeneath(rootFD, clean); err == nil {
			fd, err = openBeneath(rootFD, clean)
		}
	}
	if err != nil {
		return "", subPathError(sub, err)
	}
	defer func() { _ = unix.Close(fd) }()
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("subPath %q: resolving: %w", sub, err)
	}
	return path, nil
}

// openBeneath opens path below dirFD as an O_PATH descriptor; the kernel
// refuses (EXDEV) any resolution that would leave dirFD's tree.
func openBeneath(dirFD int, path string) (int, error) {
	for {
		fd, err := unix.Openat2(dirFD, path, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		})
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue // a concurrent rename; the kernel asks to retry
		}
		return fd, err
	}
}

// mkdirBeneath creates the missing directories of path below dirFD, each
// one inside a parent that was itself resolved beneath dirFD.
func mkdirBeneath(dirFD int, path string) error {
	parts := strings.Split(path, string(filepath.Separator))
	for i := range parts {
		parent, name := filepath.Join(parts[:i]...), parts[i]
		if parent == "" {
			parent = "."
		}
		pfd, err := openBeneath(dirFD, parent)
		if err != nil {
			return err
		}
		err = unix.Mkdirat(pfd, name, 0o755)
		_ = unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
	}
	return nil
}

func subPathError(sub string, err error) error {
	if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("subPath %q %w (through a symlink or \"..\"); mirrorlet does not follow it", sub, errSubPathEscapes)
	}
	return fmt.Errorf("subPath %q: %w", sub, err)
}
