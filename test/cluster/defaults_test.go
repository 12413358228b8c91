package cluster

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/config"
	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// TestDeployDefaultsStayClearOfAKubelet checks that deploy/'s defaults
// (the configuration file and the unit) share nothing with a kubelet's
// defaults, as the real kubelet prints them (kubelet --help): ports,
// runtime socket, root and log folders, node name. TestNextToAKubelet shows
// what happens otherwise to a shared pod log folder.
func TestDeployDefaultsStayClearOfAKubelet(t *testing.T) {
	kubelet := kubeletDefaults(t)
	c, err := config.Load(nodetest.RepoPath("deploy/config/config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kubeletPorts := map[string]string{kubelet["port"]: "port", kubelet["healthz-port"]: "healthz-port",
		kubelet["read-only-port"]: "read-only-port"}
	for field, addr := range map[string]string{"port": "x:" + port(t, c.Port), "healthzBindAddress": c.HealthzBindAddress,
		"metricsBindAddress": c.MetricsBindAddress} {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s %q: %v", field, addr, err)
		}
		if flag, clash := kubeletPorts[port]; clash {
			t.Errorf("%s uses port %s, the kubelet's --%s default", field, port, flag)
		}
	}
	if c.ContainerRuntimeEndpoint == kubelet["container-runtime-endpoint"] {
		t.Errorf("containerRuntimeEndpoint is the kubelet's default %s", c.ContainerRuntimeEndpoint)
	}
	if within(c.RootDir, kubelet["root-dir"]) || within(kubelet["root-dir"], c.RootDir) {
		t.Errorf("rootDir %s overlaps the kubelet's --root-dir %s", c.RootDir, kubelet["root-dir"])
	}
	// podLogsDir has no kubelet flag; its default is /var/log/pods, and the
	// kubelet writes log symlinks into /var/log/containers whatever it says.
	for _, dir := range []string{"/var/log/pods", "/var/log/containers"} {
		if within(c.PodLogsDir, dir) || within(dir, c.PodLogsDir) {
			t.Errorf("podLogsDir %s overlaps the kubelet's %s", c.PodLogsDir, dir)
		}
	}
	unit, err := os.ReadFile(nodetest.RepoPath("deploy/systemd/mirrorlet.service"))
	if err != nil {
		t.Fatal(err)
	}
	// The kubelet's node name defaults to the host name (%H).
	if !strings.Contains(string(unit), "\nEnvironment=MIRRORLET_NODE_NAME=%H-static\n") {
		t.Errorf("deploy/systemd/mirrorlet.service does not default the node name to %%H-static")
	}
}

// kubeletDefaults returns the defaults of the kubelet's flags, from
// kubelet --help.
func kubeletDefaults(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command(filepath.Join(kubeAssets, "kubelet"), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("kubelet --help: %v\n%s", err, out)
	}
	re := regexp.MustCompile(`(?m)^\s+--([a-z-]+) \S+ .*?\(default "?([^")]*)"?\)`)
	defaults := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		defaults[m[1]] = m[2]
	}
	for _, f := range []string{"port", "healthz-port", "read-only-port", "container-runtime-endpoint", "root-dir"} {
		if defaults[f] == "" {
			t.Fatalf("no default of --%s in kubelet --help", f)
		}
	}
	return defaults
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func port(t *testing.T, p *int32) string {
	t.Helper()
	if p == nil {
		t.Fatal("deploy/config/config.yaml sets no port")
	}
	return strconv.Itoa(int(*p))
}
