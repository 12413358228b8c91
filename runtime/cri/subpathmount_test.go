package cri

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// subPathPod is a pod whose container c mounts the subPaths subs of the
// hostPath volume vol, at /m0, /m1, ...
func subPathPod(vol string, subs ...string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-1"},
		Spec: corev1.PodSpec{
			Volumes:    []corev1.Volume{{Name: "vol", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: vol}}}},
			Containers: []corev1.Container{{Name: "c"}},
		},
	}
	for i, sub := range subs {
		pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: "vol", MountPath: "/m" + string(rune('0'+i)), SubPath: sub})
	}
	return pod
}

// rootRuntime is a Runtime for the host side of mounts (no CRI runtime
// behind it), with its own root directory; it needs root. Whatever is
// still mounted beneath the test's directories when it ends is unmounted.
func rootRuntime(t *testing.T) *Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	r := &Runtime{opts: Options{RootDir: t.TempDir()}}
	t.Cleanup(func() {
		for _, p := range testMounts(t, filepath.Dir(r.opts.RootDir)) {
			_ = unix.Unmount(p, unix.MNT_DETACH)
		}
	})
	return r
}

// testMounts lists the mount points beneath dir, read from the mount
// table by the test itself.
func testMounts(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	return out
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func hostPathOf(t *testing.T, ms []*runtimeapi.Mount, containerPath string) string {
	t.Helper()
	for _, m := range ms {
		if m.ContainerPath == containerPath {
			return m.HostPath
		}
	}
	t.Fatalf("no mount at %s in %v", containerPath, ms)
	return ""
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb)
}

// TestSubPathSwappedForSymlinkAfterCheck: the container swaps the subPath
// directory for a symlink out of the volume after mirrorlet checked it and
// before the runtime mounts it (CVE-2021-25741). The path handed to the
// runtime still shows the directory that was checked (same inode, same
// content), never the symlink's target; and once the pod's data is
// removed nothing is left mounted, and the volume's files are all there.
func TestSubPathSwappedForSymlinkAfterCheck(t *testing.T) {
	r := rootRuntime(t)
	outside, vol := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(outside, "secret"), "host secret")
	writeFile(t, filepath.Join(vol, "data", "hello"), "inside the volume")
	writeFile(t, filepath.Join(vol, "conf.txt"), "a file subPath")
	swapped := 0
	r.subPathOpened = func(volumeDir, sub string) {
		// What the container does, between the check and the runtime.
		p := filepath.Join(volumeDir, sub)
		if err := os.Rename(p, p+".moved"); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, p); err != nil {
			t.Fatal(err)
		}
		swapped++
	}
	pod := subPathPod(vol, "data", "conf.txt")
	ms, err := r.containerMounts(pod, &pod.Spec.Containers[0], 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if swapped != 2 {
		t.Fatalf("the hook ran %d times, want 2", swapped)
	}
	dir, file := hostPathOf(t, ms, "/m0"), hostPathOf(t, ms, "/m1")
	if want := filepath.Join(r.podDir("uid-1"), "volume-subpaths", "vol", "c", "0"); dir != want {
		t.Errorf("handed path %s, want %s", dir, want)
	}
	if !sameFile(t, dir, filepath.Join(vol, "data.moved")) {
		t.Errorf("%s is not the directory that was checked", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "secret")); err == nil {
		t.Errorf("%s shows the symlink's target: the host's files", dir)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "hello")); err != nil || string(data) != "inside the volume" {
		t.Errorf("%s/hello = %q, %v", dir, data, err)
	}
	if !sameFile(t, file, filepath.Join(vol, "conf.txt.moved")) {
		t.Errorf("%s is not the file that was checked", file)
	}

	if err := r.RemovePodData(t.Context(), "uid-1"); err != nil {
		t.Fatal(err)
	}
	if left := testMounts(t, r.opts.RootDir); len(left) > 0 {
		t.Errorf("still mounted after the pod's data went: %v", left)
	}
	if _, err := os.Lstat(r.podDir("uid-1")); !os.IsNotExist(err) {
		t.Errorf("pod directory left: %v", err)
	}
	for _, p := range []string{filepath.Join(vol, "data.moved", "hello"), filepath.Join(vol, "conf.txt.moved"), filepath.Join(outside, "secret")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s went with the pod's data: %v", p, err)
		}
	}
}

// sharedTmpfs mounts a tmpfs on a new directory and makes it a shared
// mount, as a node's / is under systemd; it is unmounted when the test
// ends.
func sharedTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mountRootAt(t *testing.T, path string) bool {
	t.Helper()
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Close(fd) }()
	root, err := isMountRoot(fd)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestSubPathMountLifecycle: a new attempt of the container replaces its
// subPath mounts (never stacks them); a subPath through a symlink out of
// the volume is still refused, naming the pod, volume and subPath, with
// nothing mounted; a mount made on the host beneath the subPath after the
// bind reaches it (HostToContainer propagation works through it) and stays
// on the host when the pod's data goes; a symlink left where a mount was
// is removed, not followed.
func TestSubPathMountLifecycle(t *testing.T) {
	r := rootRuntime(t)
	vol, outside := sharedTmpfs(t), t.TempDir()
	writeFile(t, filepath.Join(vol, "data", "hello"), "inside the volume")
	writeFile(t, filepath.Join(outside, "secret"), "host secret")
	if err := os.Symlink(outside, filepath.Join(vol, "escape")); err != nil {
		t.Fatal(err)
	}
	pod := subPathPod(vol, "data", "new/dir")
	c := &pod.Spec.Containers[0]
	var dir string
	for attempt := range uint32(2) {
		ms, err := r.containerMounts(pod, c, attempt, "")
		if err != nil {
			t.Fatal(err)
		}
		dir = hostPathOf(t, ms, "/m0")
		if !sameFile(t, dir, filepath.Join(vol, "data")) || !sameFile(t, hostPathOf(t, ms, "/m1"), filepath.Join(vol, "new", "dir")) {
			t.Fatalf("attempt %d: the handed paths are not the subPaths", attempt)
		}
	}
	if got := testMounts(t, r.opts.RootDir); len(got) != 2 {
		t.Errorf("mounts after two attempts: %v, want one per subPath", got)
	}

	bad := subPathPod(vol, "escape")
	bad.UID = "uid-2"
	_, err := r.containerMounts(bad, &bad.Spec.Containers[0], 0, "")
	for _, want := range []string{"ns/web", `volume "vol"`, `subPath "escape"`, "leads out of the volume"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("subPath through a symlink out of the volume: error %v, want it to say %s", err, want)
		}
	}
	if got := testMounts(t, r.podDir("uid-2")); len(got) > 0 {
		t.Errorf("refused subPath left mounts: %v", got)
	}

	late := filepath.Join(vol, "data", "late")
	if err := os.Mkdir(late, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", late, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(late, unix.MNT_DETACH) })
	writeFile(t, filepath.Join(late, "f"), "mounted later on the host")
	if data, err := os.ReadFile(filepath.Join(dir, "late", "f")); err != nil || string(data) != "mounted later on the host" {
		t.Errorf("a mount made on the host beneath the subPath does not reach its bind mount: %q, %v", data, err)
	}

	// A symlink where a container's mount point was: removed, not followed.
	planted := filepath.Join(r.podDir("uid-1"), "volume-subpaths", "vol", "other", "0")
	if err := os.MkdirAll(filepath.Dir(planted), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, planted); err != nil {
		t.Fatal(err)
	}

	if err := r.RemovePodData(t.Context(), "uid-1"); err != nil {
		t.Fatal(err)
	}
	if left := testMounts(t, r.opts.RootDir); len(left) > 0 {
		t.Errorf("still mounted after the pod's data went: %v", left)
	}
	if !mountRootAt(t, late) {
		t.Errorf("the host's mount beneath the subPath went with the pod's")
	}
	for _, p := range []string{filepath.Join(vol, "data", "hello"), filepath.Join(late, "f"), filepath.Join(outside, "secret")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s went with the pod's data: %v", p, err)
		}
	}
}

// TestRemovePodDataKeepsMountedDirectory: a pod directory with something
// mounted beneath it that is not a subPath mount of mirrorlet's is not
// removed (removing it would delete what the mount shows).
func TestRemovePodDataKeepsMountedDirectory(t *testing.T) {
	r := rootRuntime(t)
	other := t.TempDir()
	writeFile(t, filepath.Join(other, "keep"), "not the pod's")
	mnt := filepath.Join(r.podDir("uid-1"), "volumes", "empty-dir", "x")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(other, mnt, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	err := r.RemovePodData(t.Context(), "uid-1")
	if err == nil || !strings.Contains(err.Error(), mnt+" is still mounted") {
		t.Errorf("RemovePodData = %v, want it to refuse while %s is mounted", err, mnt)
	}
	if _, err := os.Stat(filepath.Join(other, "keep")); err != nil {
		t.Errorf("the mounted directory's file went: %v", err)
	}
}

// TestSubPathMountTheRuntimeCannotSeeIsRefused: when the runtime's process
// is in a mount namespace that mirrorlet's mounts do not reach (as when
// mirrorlet runs in a systemd unit with ProtectSystem=), the subPath is
// refused rather than handed over as an empty mount point, and nothing is
// left mounted; the same mount for a runtime that sees it is handed over.
func TestSubPathMountTheRuntimeCannotSeeIsRefused(t *testing.T) {
	r := rootRuntime(t)
	vol := t.TempDir()
	writeFile(t, filepath.Join(vol, "data", "hello"), "inside the volume")
	elsewhere := exec.Command("sleep", "60")
	elsewhere.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	if err := elsewhere.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = elsewhere.Process.Kill(); _ = elsewhere.Wait() })
	r.peer = new(atomic.Int32)
	r.peer.Store(int32(elsewhere.Process.Pid))
	pod := subPathPod(vol, "data")
	_, err := r.containerMounts(pod, &pod.Spec.Containers[0], 0, "")
	if err == nil || !strings.Contains(err.Error(), "does not see mirrorlet's bind mount") {
		t.Errorf("subPath mount for a runtime in another mount namespace: %v, want it refused", err)
	}
	if left := testMounts(t, r.opts.RootDir); len(left) > 0 {
		t.Errorf("refused subPath left mounts: %v", left)
	}

	r.peer.Store(int32(os.Getpid()))
	ms, err := r.containerMounts(pod, &pod.Spec.Containers[0], 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if !sameFile(t, hostPathOf(t, ms, "/m0"), filepath.Join(vol, "data")) {
		t.Errorf("the handed path is not the subPath")
	}
	if err := r.RemovePodData(t.Context(), "uid-1"); err != nil {
		t.Fatal(err)
	}
}

// TestPodDataRemovedOnAKernelThatDoesNotTellMountRoots: before Linux 5.8
// statx does not say whether a path is the root of a mount; the subPath
// mounts are then found by a propagation change (EINVAL on a path that is
// not a mount point), so the pod's data still goes, its mounts with it,
// and the volume's files stay.
func TestPodDataRemovedOnAKernelThatDoesNotTellMountRoots(t *testing.T) {
	r := rootRuntime(t)
	isMountRoot = func(int) (bool, error) { return false, errMountRootUnknown }
	t.Cleanup(func() { isMountRoot = statxMountRoot })
	vol := t.TempDir()
	writeFile(t, filepath.Join(vol, "data", "hello"), "inside the volume")
	writeFile(t, filepath.Join(vol, "conf.txt"), "a file subPath")
	pod := subPathPod(vol, "data", "conf.txt")
	if _, err := r.containerMounts(pod, &pod.Spec.Containers[0], 0, ""); err != nil {
		t.Fatal(err)
	}
	// A second attempt replaces the mounts, as on a newer kernel.
	if _, err := r.containerMounts(pod, &pod.Spec.Containers[0], 1, ""); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	if got := testMounts(t, r.opts.RootDir); len(got) != 2 {
		t.Fatalf("mounts %v after two attempts, want the 2 of the last", got)
	}
	if err := r.RemovePodData(t.Context(), "uid-1"); err != nil {
		t.Fatalf("removing the pod's data: %v", err)
	}
	if left := testMounts(t, r.opts.RootDir); len(left) > 0 {
		t.Errorf("still mounted after the pod's data went: %v", left)
	}
	for _, p := range []string{filepath.Join(vol, "data", "hello"), filepath.Join(vol, "conf.txt")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s went with the pod's data: %v", p, err)
		}
	}
}
