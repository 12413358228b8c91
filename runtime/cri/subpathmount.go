package cri

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// subPathsDir holds a pod's subPath bind mounts under its directory, laid
// out as the kubelet's: volume-subpaths/<volume>/<container>/<mount index>.
const subPathsDir = "volume-subpaths"

// maxStacked bounds the mounts unmountAll takes off one target.
const maxStacked = 16

// bindSubPath opens the subPath of c.VolumeMounts[index] beneath the
// volume directory root and bind-mounts what it opened, by its descriptor,
// onto a path of mirrorlet's own under the pod's directory, which it
// returns for the runtime to mount. The bind mount pins the inode that was
// checked: a container that swaps a directory of the volume for a symlink
// before the runtime mounts (CVE-2021-25741) changes nothing of what the
// handed path shows. A mount that an earlier attempt of c left there is
// replaced, so each attempt resolves the subPath anew; removeSubPathMounts
// removes them with the pod's data.
func (r *Runtime) bindSubPath(pod *corev1.Pod, c *corev1.Container, index int, root string) (string, error) {
	m := &c.VolumeMounts[index]
	fd, err := openSubPath(root, m.SubPath)
	if err != nil {
		return "", err
	}
	defer func() { _ = unix.Close(fd) }()
	if r.subPathOpened != nil {
		r.subPathOpened(root, m.SubPath)
	}
	target := filepath.Join(r.podDir(string(pod.UID)), subPathsDir, m.Name, c.Name, strconv.Itoa(index))
	if err := prepareSubPathTarget(target, fd); err != nil {
		return "", fmt.Errorf("subPath %q: %w", m.SubPath, err)
	}
	// The source is the descriptor's magic link: the kernel mounts the file
	// the descriptor holds, whatever its path names now. Recursive, as the
	// runtime's own bind of a path is: mounts beneath the subPath stay
	// visible, and the new mount joins the source's peer group, so
	// mountPropagation works through it as it did on the path.
	src := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		err = fmt.Errorf("subPath %q: bind-mounting it onto %s: %w", m.SubPath, target, err)
		return "", errors.Join(err, removeSubPathTarget(target))
	}
	if err := r.checkRuntimeSees(target); err != nil {
		return "", errors.Join(fmt.Errorf("subPath %q: %w", m.SubPath, err), removeSubPathTarget(target))
	}
	return target, nil
}

// checkRuntimeSees checks that the container runtime sees the mount on
// target, looking through its own root (/proc/<pid>/root). A mirrorlet in
// a mount namespace of its own (a systemd unit with ProtectSystem=, say)
// makes mounts the runtime never sees: the container would get the empty
// mount point in place of its subPath. It passes while the runtime's
// process is unknown, or when mirrorlet may not look into it.
func (r *Runtime) checkRuntimeSees(target string) error {
	pid := int32(0)
	if r.peer != nil {
		pid = r.peer.Load()
	}
	if pid == 0 {
		return nil
	}
	var mine, theirs unix.Stat_t
	if err := unix.Lstat(target, &mine); err != nil {
		return fmt.Errorf("reading %s: %w", target, err)
	}
	err := unix.Lstat("/proc/"+strconv.Itoa(int(pid))+"/root"+target, &theirs)
	if err == nil && mine.Dev == theirs.Dev && mine.Ino == theirs.Ino {
		return nil
	}
	switch {
	case errors.Is(err, unix.ENOENT) && unix.Kill(int(pid), 0) != nil:
		return nil //nolint:nilerr // the runtime restarted; the next connection tells its new process
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		// Not allowed to look (a security module, say): cannot tell.
		r.opts.Log.V(1).Info("Cannot check that the runtime sees subPath mounts", "pid", pid, "error", err.Error())
		return nil
	}
	seen := "another file"
	if err != nil {
		seen = "nothing it can read (" + err.Error() + ")"
	}
	return fmt.Errorf("the container runtime (pid %d) does not see mirrorlet's bind mount on %s, but %s: "+
		"mirrorlet must run in the runtime's mount namespace, or in one whose mounts reach it", pid, target, seen)
}

// prepareSubPathTarget makes target ready for a bind mount of fd: what an
// earlier attempt left there is unmounted and removed, and target is made
// a directory when fd is one, else an empty file (the mount point of any
// other type: file, socket, device), as the kubelet makes it.
func prepareSubPathTarget(target string, fd int) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return fmt.Errorf("creating the directory of its mount: %w", err)
	}
	if err := removeSubPathTarget(target); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("reading its type: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := unix.Mkdir(target, 0o750); err != nil {
			return fmt.Errorf("creating its mount point %s: %w", target, err)
		}
		return nil
	}
	tfd, err := unix.Open(target, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return fmt.Errorf("creating its mount point %s: %w", target, err)
	}
	return unix.Close(tfd)
}

// removeSubPathTarget unmounts what is mounted on target (with what is
// mounted beneath it) and removes target, never following a symlink.
func removeSubPathTarget(target string) error {
	if err := unmountAll(target); err != nil {
		return err
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", target, err)
	}
	return nil
}

// unmountAll unmounts every mount stacked on target.
func unmountAll(target string) error {
	for range maxStacked {
		mounted, err := unmountTop(target)
		if err != nil || !mounted {
			return err
		}
	}
	return fmt.Errorf("%s is still mounted after %d unmounts", target, maxStacked)
}

// unmountTop unmounts the mount on top of target, if there is one, and
// reports whether there was. target is opened without following a
// symlink and acted on through its descriptor. The mount is made private
// (with those beneath it) before its lazy unmount, so that only this copy
// goes: a mount that a Bidirectional container made beneath its subPath
// has propagated here too, and the one on the host stays.
func unmountTop(target string) (bool, error) {
	fd, err := unix.Open(target, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", target, err)
	}
	defer func() { _ = unix.Close(fd) }()
	mounted, err := isMountRoot(fd)
	unknown := errors.Is(err, errMountRootUnknown)
	if err != nil && !unknown || err == nil && !mounted {
		return false, err
	}
	self := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount("", self, "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		if unknown && errors.Is(err, unix.EINVAL) {
			// Before Linux 5.8 the kernel does not say whether target
			// is a mount point; a propagation change answers: EINVAL
			// on a path that is not one.
			return false, nil
		}
		return false, fmt.Errorf("making the mount on %s private: %w", target, err)
	}
	if err := unix.Unmount(self, unix.MNT_DETACH); err != nil {
		return false, fmt.Errorf("unmounting %s: %w", target, err)
	}
	return true, nil
}

// errMountRootUnknown: the kernel does not say whether a path is the root
// of a mount (statx STATX_ATTR_MOUNT_ROOT needs Linux 5.8).
var errMountRootUnknown = errors.New("the kernel does not tell mount points apart (statx STATX_ATTR_MOUNT_ROOT needs Linux 5.8)")

// isMountRoot reports whether fd is the root of a mount;
// errMountRootUnknown when the kernel does not tell. A variable, so that
// tests can be an older kernel.
var isMountRoot = statxMountRoot

func statxMountRoot(fd int) (bool, error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE, &stx); err != nil {
		return false, fmt.Errorf("statx: %w", err)
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return false, errMountRootUnknown
	}
	return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
}

// removeSubPathMounts unmounts and removes the subPath mounts of the pod
// whose directory is podDir, and their directories, never following a
// symlink. It goes on past errors and returns them all.
func removeSubPathMounts(podDir string) error {
	return removeSubPathTree(filepath.Join(podDir, subPathsDir), 3)
}

// removeSubPathTree removes the directory tree at path whose entries at
// depth are mount targets.
func removeSubPathTree(path string, depth int) error {
	if depth == 0 {
		return removeSubPathTarget(path)
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("listing %s: %w", path, err)
		}
		var errs []error
		for _, e := range entries {
			errs = append(errs, removeSubPathTree(filepath.Join(path, e.Name()), depth-1))
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	// A symlink or file here is removed itself, never followed.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return nil
}

// mountBeneath returns the first mount point found at or beneath dir
// ("" when there is none), walking it without following a symlink. Only
// directories are looked at: a file mount point cannot be removed through.
func mountBeneath(dir string) (string, error) {
	found := ""
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !d.IsDir() {
			return err
		}
		mounted, err := isMountPoint(path)
		if mounted {
			found = path
			return fs.SkipAll
		}
		return err
	})
	return found, err
}

// isMountPoint reports whether the directory path is a mount point. Where
// the kernel does not tell (statx STATX_ATTR_MOUNT_ROOT is Linux 5.8), it
// reports whether path is on another device than its parent, which misses
// a bind mount from the same file system.
func isMountPoint(path string) (bool, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE, &stx); err != nil {
		return false, fmt.Errorf("statx %s: %w", path, err)
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
	}
	var st, parent unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := unix.Lstat(filepath.Dir(path), &parent); err != nil {
		return false, fmt.Errorf("reading %s: %w", filepath.Dir(path), err)
	}
	return st.Dev != parent.Dev, nil
}
