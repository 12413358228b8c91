package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app/sdnotify"
	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/config"
)

// tomlString returns the string value of key in [section] of a TOML text
// (enough for our flat containerd config; no TOML library needed).
func tomlString(t *testing.T, text, section, key string) string {
	t.Helper()
	in := false
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(key) + `\s*=\s*["']([^"']*)["']`)
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			in = line == "["+section+"]"
			continue
		}
		if m := re.FindStringSubmatch(line); in && m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %s in [%s]", key, section)
	return ""
}

// unitValue returns the value of the last Key= line of a unit file.
func unitValue(text, key string) string {
	v := ""
	for _, line := range strings.Split(text, "\n") {
		if after, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			v = after
		}
	}
	return v
}

// TestConfigFile loads deploy/config/config.yaml with mirrorlet's loader and
// checks that it, the units, install.sh and the containerd config agree.
func TestConfigFile(t *testing.T) {
	c, err := config.Load(path("deploy/config/config.yaml"))
	if err != nil {
		t.Fatalf("deploy/config/config.yaml does not load: %v", err)
	}
	if errs := config.Validate(c); len(errs) > 0 {
		t.Fatalf("deploy/config/config.yaml: %v", errs.ToAggregate())
	}
	ctrd := read(t, "deploy/containerd/config.toml")
	sock := tomlString(t, ctrd, "grpc", "address")
	for _, tc := range []struct{ field, got, want string }{
		{"containerRuntimeEndpoint", c.ContainerRuntimeEndpoint, "unix://" + sock},
		{"staticPodPath", c.StaticPodPath, "/etc/mirrorlet/manifests"},
		{"kubeconfig", c.Kubeconfig, "/etc/mirrorlet/kubeconfig"},
		{"nodeName (the unit sets it)", c.NodeName, ""},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.field, tc.got, tc.want)
		}
	}
	if c.PodLogsDir == "/var/log/pods" {
		t.Errorf("podLogsDir is /var/log/pods, where a kubelet removes the logs of pods it does not know")
	}
}

func TestUnits(t *testing.T) {
	m := read(t, "deploy/systemd/mirrorlet.service")
	execStart := unitValue(m, "ExecStart")
	for _, want := range []string{"/usr/local/bin/mirrorlet ", "--config=/etc/mirrorlet/config.yaml", "--node-name="} {
		if !strings.Contains(execStart, want) {
			t.Errorf("mirrorlet.service ExecStart=%s lacks %q", execStart, want)
		}
	}
	for key, want := range map[string]string{"Type": "notify", "Restart": "always", "KillMode": "process"} {
		if got := unitValue(m, key); got != want {
			t.Errorf("mirrorlet.service %s=%s, want %s", key, got, want)
		}
	}
	start, err := time.ParseDuration(unitValue(m, "TimeoutStartSec") + "s")
	if err != nil || start <= sdnotify.DefaultMaxAPIWait {
		t.Errorf("mirrorlet.service TimeoutStartSec=%s must exceed sdnotify.DefaultMaxAPIWait (%s), the longest READY=1 waits for the API", unitValue(m, "TimeoutStartSec"), sdnotify.DefaultMaxAPIWait)
	}
	for _, opt := range []string{"PrivateTmp", "ProtectKernelModules", "ProtectKernelLogs"} {
		if unitValue(m, opt) != "" {
			t.Errorf("mirrorlet.service sets %s=: it hides host paths that hostPath volumes are checked against", opt)
		}
	}
	// Options that give the service a mount namespace of its own, whose
	// mounts systemd makes slaves of the host's (systemd.exec(5)).
	for _, opt := range []string{
		"ProtectSystem", "ProtectHome", "ProtectKernelTunables", "ProtectControlGroups", "ProtectProc", "ProcSubset",
		"PrivateDevices", "PrivateMounts", "ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths",
		"TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "RootDirectory", "RootImage", "MountFlags", "DynamicUser",
	} {
		if v := unitValue(m, opt); v != "" {
			t.Errorf("mirrorlet.service sets %s=%s: its subPath bind mounts would stay in a mount namespace of its own, never seen by containerd", opt, v)
		}
	}

	c := read(t, "deploy/systemd/containerd-mirrorlet.service")
	if got := unitValue(c, "ExecStart"); got != "/usr/bin/containerd --config /etc/mirrorlet/containerd/config.toml" {
		t.Errorf("containerd-mirrorlet.service ExecStart=%s", got)
	}
	for key, want := range map[string]string{"Type": "notify", "Delegate": "yes", "KillMode": "process", "Restart": "always"} {
		if got := unitValue(c, key); got != want {
			t.Errorf("containerd-mirrorlet.service %s=%s, want %s", key, got, want)
		}
	}
}

// TestUnitFlags checks that the flags mirrorlet.service passes exist.
func TestUnitFlags(t *testing.T) {
	out, err := command(repo, nil, binary(t), "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, arg := range strings.Fields(unitValue(read(t, "deploy/systemd/mirrorlet.service"), "ExecStart"))[1:] {
		name, _, _ := strings.Cut(arg, "=")
		if !strings.Contains(out, "  "+name+" ") {
			t.Errorf("mirrorlet.service passes %s, which `mirrorlet --help` does not list", name)
		}
	}
}

// TestContainerdConfig loads deploy/containerd/config.toml with the
// containerd that Debian ships (`containerd config dump` merges it with the
// defaults and fails on a malformed file).
func TestContainerdConfig(t *testing.T) {
	ctrd, err := exec.LookPath("containerd")
	if err != nil {
		t.Skip("containerd not found (Debian package containerd): config not loaded")
	}
	out, err := command(repo, nil, ctrd, "--config", path("deploy/containerd/config.toml"), "config", "dump")
	if err != nil {
		t.Fatal(err)
	}
	cri := `plugins."io.containerd.grpc.v1.cri"`
	for _, tc := range []struct{ section, key, want string }{
		{"", "root", "/var/lib/containerd-mirrorlet"},
		{"", "state", "/run/containerd-mirrorlet"},
		{"grpc", "address", "/run/containerd-mirrorlet/containerd.sock"},
		{"ttrpc", "address", "/run/containerd-mirrorlet/containerd.sock.ttrpc"},
		{"debug", "address", ""},
		{"metrics", "address", ""},
		{cri, "sandbox_image", "registry.k8s.io/pause:3.10"},
		{cri + ".cni", "bin_dir", "/usr/lib/cni"},
		{cri + ".cni", "conf_dir", "/etc/mirrorlet/cni/net.d"},
		{cri + ".registry", "config_path", "/etc/mirrorlet/containerd/certs.d"},
	} {
		if got := dumped(t, out, tc.section, tc.key); got != tc.want {
			t.Errorf("containerd config [%s] %s = %q, want %q", tc.section, tc.key, got, tc.want)
		}
	}
}

// TestContainerd2xConfig loads deploy/containerd/config-2.x.toml with the
// containerd 2.x that hack/containerd.sh builds (`make containerd`; CI
// builds it before the tests) and checks that it keeps every setting of
// the 1.6 config, plus what 2.x adds that would reach outside ours.
func TestContainerd2xConfig(t *testing.T) {
	dir, err := command(repo, nil, "bash", path("hack/containerd.sh"), "path")
	if err != nil {
		t.Fatal(err)
	}
	ctrd := filepath.Join(strings.TrimSpace(dir), "containerd")
	if _, err := os.Stat(ctrd); err != nil {
		t.Skipf("containerd 2.x not built (%v): run `make containerd`", err)
	}
	out, err := command(repo, nil, ctrd, "--config", path("deploy/containerd/config-2.x.toml"), "config", "dump")
	if err != nil {
		t.Fatal(err)
	}
	p := func(id string) string { return "plugins.'" + id + "'" }
	rt, img := p("io.containerd.cri.v1.runtime"), p("io.containerd.cri.v1.images")
	for _, tc := range []struct{ section, key, want string }{
		{"", "root", "/var/lib/containerd-mirrorlet"},
		{"", "state", "/run/containerd-mirrorlet"},
		{p("io.containerd.server.v1.grpc"), "address", "/run/containerd-mirrorlet/containerd.sock"},
		{p("io.containerd.server.v1.ttrpc"), "address", "/run/containerd-mirrorlet/containerd.sock.ttrpc"},
		{p("io.containerd.server.v1.debug"), "address", ""},
		{p("io.containerd.server.v1.metrics"), "address", ""},
		{img + ".pinned_images", "sandbox", "registry.k8s.io/pause:3.10"},
		{img, "snapshotter", "overlayfs"},
		{img + ".registry", "config_path", "/etc/mirrorlet/containerd/certs.d"},
		{rt + ".cni", "conf_dir", "/etc/mirrorlet/cni/net.d"},
		{rt + ".containerd.runtimes.runc.options", "Root", "/run/containerd-mirrorlet/runc"},
		{p("io.containerd.grpc.v1.cri"), "stream_server_address", "127.0.0.1"},
		{p("io.containerd.internal.v1.opt"), "path", "/var/lib/containerd-mirrorlet/opt"},
	} {
		if got := dumped(t, out, tc.section, tc.key); got != tc.want {
			t.Errorf("containerd 2.x config [%s] %s = %q, want %q", tc.section, tc.key, got, tc.want)
		}
	}
	if !regexp.MustCompile(`(?m)^\s*\[plugins.'io.containerd.nri.v1.nri'\]\n\s*disable = true$`).MatchString(out) {
		t.Errorf("containerd 2.x config: NRI (its socket is shared by every containerd) is not disabled")
	}
	if !strings.Contains(out, "bin_dirs = ['/usr/lib/cni']") {
		t.Errorf("containerd 2.x config: CNI bin_dirs is not Debian's /usr/lib/cni")
	}
}

// dumped returns a string value of `containerd config dump` output; section
// "" is the top level, before any table.
func dumped(t *testing.T, text, section, key string) string {
	t.Helper()
	if section != "" {
		return tomlString(t, text, section, key)
	}
	before, _, _ := strings.Cut(text, "\n[")
	return tomlString(t, "[top]\n"+before, "top", key)
}
