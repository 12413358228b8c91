package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// mountsUnder returns the mount points beneath dir, from the host's mount
// table.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, m := range nodetest.MountPoints(t) {
		if strings.HasPrefix(m, dir+"/") {
			out = append(out, m)
		}
	}
	return out
}

// mountIDs returns the unique ID (never reused, unlike mountinfo's) of the
// mount on each path, or nil when the kernel does not tell it (before
// Linux 6.8).
func mountIDs(t testing.TB, paths []string) []uint64 {
	t.Helper()
	var ids []uint64
	for _, p := range paths {
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
			t.Fatal(err)
		}
		if stx.Mask&unix.STATX_MNT_ID_UNIQUE == 0 {
			t.Logf("the kernel gives no unique mount IDs: not comparing mounts by ID")
			return nil
		}
		ids = append(ids, stx.Mnt_id)
	}
	return ids
}

// waitNoMountsUnder waits until nothing is mounted beneath dir.
func waitNoMountsUnder(t testing.TB, dir string) {
	t.Helper()
	var left []string
	eventually(t, time.Minute, "no mount left under "+dir, func() bool {
		left = mountsUnder(t, dir)
		return len(left) == 0
	})
}

// TestSubPathMountedFromResolvedDescriptor: a pod whose containers mount
// subPaths (directories and a file of a hostPath, a directory of an
// emptyDir shared by an init container; readOnly and not) runs and sees its
// data; what containerd mounts is mirrorlet's bind mount under --root-dir
// (pods/<uid>/volume-subpaths/<volume>/<container>/<index>), not the path
// in the volume; a new attempt of the container replaces its mounts; and
// once the manifest goes nothing stays mounted under --root-dir while the
// volume's files are all there.
func TestSubPathMountedFromResolvedDescriptor(t *testing.T) {
	n := startNode(t)
	vol := filepath.Join(n.dir, "vol")
	writeTestFile(t, filepath.Join(vol, "sub", "hello"), "from the subPath")
	writeTestFile(t, filepath.Join(vol, "conf.txt"), "a file subPath")
	if err := os.Chmod(filepath.Join(vol, "sub"), 0o777); err != nil { // only readOnly may stop a write
		t.Fatal(err)
	}
	port := freePort(t)
	pod := webPod("subpath", port)
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: vol, Type: ptr.To(corev1.HostPathDirectory)}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	pod.Spec.InitContainers = []corev1.Container{{
		Name: "init", Image: registry.Ref("webserver"),
		Args:         []string{"--write-file", "/out/init.txt", "--message", "init ran"},
		VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/out", SubPath: "from-init"}},
	}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
		{Name: "host", MountPath: "/data", SubPath: "sub"},
		{Name: "host", MountPath: "/etc/app.conf", SubPath: "conf.txt", ReadOnly: true},
		{Name: "host", MountPath: "/ro", SubPath: "sub", ReadOnly: true},
		{Name: "scratch", MountPath: "/init", SubPath: "from-init"},
	}
	n.writeManifest("subpath.yaml", pod)
	m := n.waitRunning("subpath", 2*time.Minute)
	for path, want := range map[string]string{
		"/data/hello": "from the subPath", "/ro/hello": "from the subPath",
		"/etc/app.conf": "a file subPath", "/init/init.txt": "init ran",
	} {
		if got := answer(t, port, "/file?path="+path); got != want {
			t.Errorf("%s in the container = %q, want %q", path, got, want)
		}
	}
	checkSubPathWrites(t, port, vol)
	mounts := mountsUnder(t, n.root)
	if len(mounts) != 5 {
		t.Fatalf("mounts under --root-dir: %v, want the 5 subPath mounts", mounts)
	}
	ids := mountIDs(t, mounts)
	podDir := filepath.Join(n.root, "pods", m.Annotations["kubernetes.io/config.hash"])
	target := filepath.Join(podDir, "volume-subpaths", "host", "web", "0")
	if info := ctr(t, "containers", "info", containerID(m.Status.ContainerStatuses[0].ContainerID)); !strings.Contains(info, `"source": "`+target+`"`) {
		t.Errorf("containerd does not mount %s:\n%s", target, grepLines(info, `"source"`))
	}

	// A new attempt replaces the container's subPath mounts.
	if _, err := get(port, "/crash"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the container restarted", func() bool {
		m := n.mirror("subpath")
		return m != nil && len(m.Status.ContainerStatuses) == 1 && m.Status.ContainerStatuses[0].RestartCount == 1 &&
			m.Status.ContainerStatuses[0].Ready
	})
	if got := answer(t, port, "/file?path=/data/hello"); got != "from the subPath" {
		t.Errorf("/data/hello after a restart = %q", got)
	}
	after := mountsUnder(t, n.root)
	if !slices.Equal(after, mounts) {
		t.Errorf("mounts under --root-dir after a restart: %v, want the same 5 targets: %v", after, mounts)
	} else if afterIDs := mountIDs(t, after); ids != nil {
		for i, p := range after {
			if replaced := afterIDs[i] != ids[i]; replaced != strings.Contains(p, "/web/") {
				t.Errorf("%s replaced: %v; want the restarted container's mounts (only) replaced", p, replaced)
			}
		}
	}

	if err := os.Remove(filepath.Join(n.manifests, "subpath.yaml")); err != nil {
		t.Fatal(err)
	}
	waitNoMountsUnder(t, n.root)
	eventually(t, 30*time.Second, "the pod's directory removed", func() bool {
		_, err := os.Stat(podDir)
		return os.IsNotExist(err)
	})
	for _, p := range []string{"sub/hello", "sub/written", "conf.txt"} {
		if _, err := os.Stat(filepath.Join(vol, p)); err != nil {
			t.Errorf("the volume's %s went with the pod: %v", p, err)
		}
	}
}

// checkSubPathWrites checks that a read-write subPath mount writes into the
// volume and that readOnly ones (a directory, a file) refuse writes.
func checkSubPathWrites(t *testing.T, port int, vol string) {
	t.Helper()
	if body, err := get(port, "/write?path=/data/written&data=w"); err != nil {
		t.Errorf("writing through the subPath: %q, %v", body, err)
	} else if data, err := os.ReadFile(filepath.Join(vol, "sub", "written")); err != nil || string(data) != "w" {
		t.Errorf("the write through the subPath is not in the volume: %q, %v", data, err)
	}
	for _, path := range []string{"/ro/x", "/etc/app.conf"} {
		if body, err := get(port, "/write?path="+path+"&data=y"); err == nil || !strings.Contains(body, "read-only file system") {
			t.Errorf("writing %s (readOnly subPath) = %q, %v; want a read-only file system error", path, body, err)
		}
	}
}

func writeTestFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSubPathMountKeptAcrossRestart: a restarted mirrorlet adopts a running
// subPath pod and keeps its mount (the same one); it cleans the subPath
// mounts a pod version that no longer runs left under --root-dir; and it
// removes the running pod's mount once the manifest goes.
func TestSubPathMountKeptAcrossRestart(t *testing.T) {
	n := startNode(t)
	vol := filepath.Join(n.dir, "vol")
	writeTestFile(t, filepath.Join(vol, "sub", "hello"), "from the subPath")
	port := freePort(t)
	pod := hostSubPathPod("subpath", port, vol)
	n.writeManifest("subpath.yaml", pod)
	m := n.waitRunning("subpath", 2*time.Minute)
	id := m.Status.ContainerStatuses[0].ContainerID
	answer(t, port, "/")
	before := mountsUnder(t, n.root)
	if len(before) != 1 {
		t.Fatalf("mounts under --root-dir: %v, want the subPath mount", before)
	}
	beforeIDs := mountIDs(t, before)

	n.stop(syscall.SIGKILL)
	gone := plantLeftoverSubPath(t, n.root)
	n.start()
	m = proveAlive(t, n, pod, "subpath.yaml", "a")
	if cs := m.Status.ContainerStatuses[0]; cs.ContainerID != id || cs.RestartCount != 0 {
		t.Fatalf("after the restart: container %s restartCount %d, want %s and 0", cs.ContainerID, cs.RestartCount, id)
	}
	if got := answer(t, port, "/file?path=/data/hello"); got != "from the subPath" {
		t.Errorf("/data/hello after the restart = %q", got)
	}
	eventually(t, 30*time.Second, "the leftover of a pod version that is gone removed", func() bool {
		_, err := os.Lstat(gone)
		return os.IsNotExist(err)
	})
	if after := mountsUnder(t, n.root); !slices.Equal(after, before) || !slices.Equal(mountIDs(t, after), beforeIDs) {
		t.Errorf("mounts under --root-dir after the restart: %v, want the running pod's, unchanged (same mount): %v", after, before)
	}

	if err := os.Remove(filepath.Join(n.manifests, "subpath.yaml")); err != nil {
		t.Fatal(err)
	}
	waitNoMountsUnder(t, n.root)
	if _, err := os.Stat(filepath.Join(vol, "sub", "hello")); err != nil {
		t.Errorf("the volume's file went with the pod: %v", err)
	}
}

// plantLeftoverSubPath makes, under root, the subPath mount of a pod
// version that no longer runs (as one whose manifest changed while
// mirrorlet was stopped leaves it) and returns its pod directory.
func plantLeftoverSubPath(t *testing.T, root string) string {
	t.Helper()
	src := t.TempDir()
	writeTestFile(t, filepath.Join(src, "keep"), "not the pod's")
	podDir := filepath.Join(root, "pods", "0123456789abcdef0123456789abcdef")
	target := filepath.Join(podDir, "volume-subpaths", "host", "web", "0")
	if err := os.MkdirAll(target, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(src, "keep")); err != nil {
			t.Errorf("the leftover mount's source lost its file: %v", err)
		}
	})
	return podDir
}

// TestSubPathHostToContainerPropagation: mountPropagation HostToContainer
// works through the subPath's bind mount: a mount made on the host beneath
// the subPath after the container started shows in the container; and
// when the pod goes, the host's mount stays.
func TestSubPathHostToContainerPropagation(t *testing.T) {
	n := startNode(t)
	vol := filepath.Join(n.dir, "vol")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	// A shared mount, as a node's / is under systemd (the runtime refuses
	// HostToContainer from a private one).
	if err := unix.Mount("tmpfs", vol, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("", vol, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(vol, "sub", "late"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	pod := hostSubPathPod("prop", port, vol)
	pod.Spec.Containers[0].VolumeMounts[0].MountPropagation = ptr.To(corev1.MountPropagationHostToContainer)
	n.writeManifest("prop.yaml", pod)
	n.waitRunning("prop", 2*time.Minute)
	answer(t, port, "/")

	late := filepath.Join(vol, "sub", "late")
	if err := unix.Mount("tmpfs", late, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(late, "f"), "mounted on the host later")
	eventually(t, 30*time.Second, "the host's later mount seen in the container", func() bool {
		body, err := get(port, "/file?path=/data/late/f")
		return err == nil && body == "mounted on the host later"
	})

	if err := os.Remove(filepath.Join(n.manifests, "prop.yaml")); err != nil {
		t.Fatal(err)
	}
	waitNoMountsUnder(t, n.root)
	if data, err := os.ReadFile(filepath.Join(late, "f")); err != nil || string(data) != "mounted on the host later" {
		t.Errorf("the host's mount beneath the subPath went with the pod: %q, %v", data, err)
	}
}

// TestSubPathRefusedWhenTheRuntimeCannotSeeIt: a mirrorlet in a mount
// namespace of its own (as in a systemd unit with ProtectSystem=) makes
// subPath mounts that containerd never sees; rather than run the container
// on the empty mount point, mirrorlet refuses the subPath and says why.
func TestSubPathRefusedWhenTheRuntimeCannotSeeIt(t *testing.T) {
	n := startNode(t, func(n *node) {
		n.sysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	})
	vol := filepath.Join(n.dir, "vol")
	writeTestFile(t, filepath.Join(vol, "sub", "hello"), "from the subPath")
	port := freePort(t)
	pod := hostSubPathPod("subpath", port, vol)
	n.writeManifest("subpath.yaml", pod)
	eventually(t, time.Minute, "the mirror to say containerd does not see the subPath mount", func() bool {
		m := n.mirror("subpath")
		if m == nil || len(m.Status.ContainerStatuses) == 0 {
			return false
		}
		w := m.Status.ContainerStatuses[0].State.Waiting
		return w != nil && strings.Contains(w.Message, "does not see mirrorlet's bind mount")
	})
	if body, err := get(port, "/file?path=/data/hello"); err == nil {
		t.Errorf("the container runs, /data/hello = %q", body)
	}
}

// hostSubPathPod is the web server pod with the hostPath vol mounted at
// /data through its subPath "sub".
func hostSubPathPod(name string, port int, vol string) *corev1.Pod {
	pod := webPod(name, port)
	pod.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: vol}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/data", SubPath: "sub"}}
	return pod
}
