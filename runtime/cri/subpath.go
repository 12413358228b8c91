package cri

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// errSubPathEscapes marks a subPath that leads out of its volume.
var errSubPathEscapes = errors.New("leads out of the volume")

// openSubPath opens sub inside the volume directory root as an O_PATH
// descriptor, creating missing directories on the way, without ever
// following a symlink (or "..") out of root: the container owns the
// volume's contents and may have planted a symlink to the host's /etc
// there (the kubelet's CVE-2017-1002101 class). Every step is resolved by
// the kernel with openat2(RESOLVE_BENEATH), so a symlink inside the volume
// that stays inside it still works.
//
// The descriptor, not a path, is what the caller uses (bindSubPath mounts
// it): a path found now could be swapped for a symlink by the container
// before the runtime mounts it (CVE-2021-25741); the descriptor keeps the
// inode that was checked.
func openSubPath(root, sub string) (int, error) {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("subPath %q: opening volume directory %s: %w", sub, root, err)
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
		return -1, subPathError(sub, err)
	}
	return fd, nil
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
