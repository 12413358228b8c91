package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// kubelet is a real kubelet run by a test, with its own containerd, its own
// identity (system:node:<name> in system:nodes, under the Node authorizer
// and NodeRestriction), static pod directory and pod log directory.
type kubelet struct {
	name      string
	dir       string
	manifests string
	logs      string
	ctd       *nodetest.Containerd
	proc      *nodetest.Process
}

// The host's kernel settings a kubelet changes at start (it sets
// vm.overcommit_memory=1, kernel.panic=10, ... unless
// protectKernelDefaults, where it refuses to start instead); the test puts
// them back.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// Host paths a kubelet creates whatever its configuration says: its
// device-plugin socket folder, and the folder of container log symlinks
// (which its log GC also cleans). The test removes those it created.
var kubeletHostPaths = []string{"/var/lib/kubelet", "/var/log/containers"}

// startKubelet runs a kubelet as node name until the test ends.
func startKubelet(t *testing.T, name string) *kubelet {
	t.Helper()
	restoreHost(t)
	k := &kubelet{name: name, dir: t.TempDir()}
	k.manifests = filepath.Join(k.dir, "manifests")
	k.logs = filepath.Join(k.dir, "pod-logs")
	if err := os.MkdirAll(k.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if k.ctd, err = nodetest.StartContainerd(t.Context(), filepath.Join(workDir, "kctd"), registry.Host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := k.ctd.Stop(); err != nil {
			t.Error(err)
		}
	})
	kc, err := userKubeconfig("system:node:"+name, "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(k.dir, "config.yaml")
	if err := os.WriteFile(config, []byte(k.config(nodetest.FreePort(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	k.proc, err = nodetest.StartProcess("kubelet "+name, filepath.Join(k.dir, "kubelet.log"),
		filepath.Join(kubeAssets, "kubelet"), "--config", config, "--kubeconfig", kc,
		"--hostname-override", name,
		"--root-dir", filepath.Join(k.dir, "root"), "--cert-dir", filepath.Join(k.dir, "pki"), "--v=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.stop(t) })
	return k
}

// config is the kubelet's configuration for this host: cgroup v1 without
// QoS cgroups or node allocatable enforcement, no iptables chains, short
// check periods, eviction thresholds that a test machine's disk never
// reaches.
func (k *kubelet) config(port int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: %s
staticPodPath: %s
podLogsDir: %s
volumePluginDir: %s
fileCheckFrequency: 1s
address: 127.0.0.1
port: %d
healthzPort: 0
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
makeIPTablesUtilChains: false
evictionHard: {memory.available: 1Mi, nodefs.available: 1%%, imagefs.available: 1%%}
`, k.ctd.Endpoint, k.manifests, k.logs, filepath.Join(k.dir, "volume-plugins"), port)
}

// stop removes the kubelet's static pods, stops it, and prints its errors
// when the test failed.
func (k *kubelet) stop(t *testing.T) {
	if err := k.proc.Stop(syscall.SIGTERM); err != nil {
		t.Error(err)
	}
	deleteNode(k.name)
	if err := unmountUnder(k.dir); err != nil {
		t.Error(err)
	}
	if t.Failed() {
		data, _ := os.ReadFile(k.proc.LogPath)
		var errs []string
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "E") || strings.HasPrefix(l, "F") {
				errs = append(errs, l)
			}
		}
		t.Logf("kubelet %s errors (last 40):\n%s", k.name, strings.Join(errs[max(0, len(errs)-40):], "\n"))
	}
}

// unmountUnder detaches every mount under dir, deepest first: the kubelet
// bind-mounts its root folder onto itself (to make it shared).
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return fmt.Errorf("reading mounts: %w", err)
	}
	var mounts []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			mounts = append(mounts, f[1])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmounting %s: %w", mounts[i], err)
		}
	}
	return nil
}

// restoreHost records the kernel settings and host paths a kubelet
// changes, and puts them back when the test ends.
func restoreHost(t *testing.T) {
	t.Helper()
	values := map[string][]byte{}
	for _, s := range kubeletSysctls {
		v, err := os.ReadFile(filepath.Join("/proc/sys", s))
		if err != nil {
			t.Fatalf("reading sysctl %s: %v", s, err)
		}
		values[s] = v
	}
	var created []string
	for _, p := range kubeletHostPaths {
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			created = append(created, p)
		}
	}
	t.Cleanup(func() {
		for s, v := range values {
			if err := os.WriteFile(filepath.Join("/proc/sys", s), v, 0o644); err != nil {
				t.Errorf("restoring sysctl %s: %v", s, err)
			}
		}
		for _, p := range created {
			_ = os.RemoveAll(p)
		}
	})
}
