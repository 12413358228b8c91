package deploy

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// installed is what hack/install.sh puts under its root: the source of each
// file (empty for directories and the binary) and its mode.
var installed = map[string]struct {
	src  string
	mode fs.FileMode
}{
	"usr/local/bin/mirrorlet":                                    {"", 0o755},
	"etc/systemd/system/mirrorlet.service":                       {"deploy/systemd/mirrorlet.service", 0o644},
	"etc/systemd/system/containerd-mirrorlet.service":            {"deploy/systemd/containerd-mirrorlet.service", 0o644},
	"etc/mirrorlet/config.yaml":                                  {"deploy/config/config.yaml", 0o644},
	"etc/mirrorlet/containerd/config.toml":                       {"deploy/containerd/config.toml", 0o644},
	"etc/mirrorlet/manifests":                                    {"", fs.ModeDir | 0o755},
	"etc/mirrorlet/containerd/certs.d":                           {"", fs.ModeDir | 0o755},
	"etc/mirrorlet/cni/net.d":                                    {"", fs.ModeDir | 0o755},
	"usr/local/share/mirrorlet/rbac.yaml":                        {"deploy/rbac/mirrorlet.yaml", 0o644},
	"usr/local/share/mirrorlet/admission/node-scoping.yaml":      {"deploy/admission/node-scoping.yaml", 0o644},
	"usr/local/share/mirrorlet/admission/read-only-mirrors.yaml": {"deploy/admission/read-only-mirrors.yaml", 0o644},
	"usr/local/share/mirrorlet/cni/10-mirrorlet.conflist":        {"deploy/containerd/10-mirrorlet.conflist", 0o644},
}

// install runs hack/install.sh into root with the prebuilt binary.
func install(t *testing.T, root string) string {
	t.Helper()
	out, err := command(repo, nil, "bash", path("hack/install.sh"), "--root", root, "--binary", binary(t))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// files lists every file and directory under root, with its mode.
func files(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	got := map[string]fs.FileMode{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		got[filepath.ToSlash(rel)] = info.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func checkTree(t *testing.T, root string) {
	t.Helper()
	got := files(t, root)
	for rel, want := range installed {
		mode, ok := got[rel]
		if !ok {
			t.Errorf("%s not installed", rel)
			continue
		}
		if mode != want.mode {
			t.Errorf("%s has mode %s, want %s", rel, mode, want.mode)
		}
	}
	var extra []string
	for rel, mode := range got {
		if _, ok := installed[rel]; !ok && !mode.IsDir() {
			extra = append(extra, rel)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("unexpected files installed: %v", extra)
	}
}

func sameContent(t *testing.T, installedPath, src string) {
	t.Helper()
	a, err := os.ReadFile(installedPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("%s differs from %s", installedPath, src)
	}
}

func TestInstall(t *testing.T) {
	root := t.TempDir()
	out := install(t, root)
	checkTree(t, root)
	for rel, f := range installed {
		if f.src != "" {
			sameContent(t, filepath.Join(root, rel), path(f.src))
		}
	}
	sameContent(t, filepath.Join(root, "usr/local/bin/mirrorlet"), binary(t))
	for _, want := range []string{
		"kubectl apply -f /usr/local/share/mirrorlet/rbac.yaml",
		"kubectl apply -f /usr/local/share/mirrorlet/admission/",
		"systemctl enable --now containerd-mirrorlet mirrorlet",
		"/etc/mirrorlet/kubeconfig",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("install.sh output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "reloaded systemd") {
		t.Errorf("install.sh told systemd about an install under --root:\n%s", out)
	}

	// An edited configuration survives a second run; the rest is the same.
	config := filepath.Join(root, "etc/mirrorlet/config.yaml")
	edited := read(t, "deploy/config/config.yaml") + "nodeLabels: {zone: a}\n"
	if err := os.WriteFile(config, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(root, "etc/mirrorlet/manifests/web.yaml")
	if err := os.WriteFile(manifest, []byte("kind: Pod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = install(t, root)
	if got, err := os.ReadFile(config); err != nil || string(got) != edited {
		t.Errorf("second run changed the edited config (err %v):\n%s", err, got)
	}
	if !strings.Contains(out, "kept /etc/mirrorlet/config.yaml") {
		t.Errorf("second run does not say it kept the config:\n%s", out)
	}
	if _, err := os.Stat(manifest); err != nil {
		t.Errorf("second run lost a manifest: %v", err)
	}
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	// The edit wrote 0600, which the second run kept too; checkTree wants
	// the shipped mode.
	if err := os.Chmod(config, 0o644); err != nil {
		t.Fatal(err)
	}
	checkTree(t, root)
}

func TestInstallRefusesMissingBinary(t *testing.T) {
	out, err := command(repo, nil, "bash", path("hack/install.sh"), "--root", t.TempDir(), "--binary", filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.Contains(out, "does not exist") {
		t.Errorf("install.sh with a missing binary: err %v, output:\n%s", err, out)
	}
}

// TestSystemdVerify runs `systemd-analyze verify` on the installed units.
// verify checks that ExecStart binaries exist, so mirrorlet's unit is
// verified with ExecStart pointing at the binary in the temporary root.
func TestSystemdVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (Debian package systemd): units not verified")
	}
	root := t.TempDir()
	install(t, root)
	units := t.TempDir()
	var paths []string
	for _, name := range []string{"mirrorlet.service", "containerd-mirrorlet.service"} {
		text := read(t, "deploy/systemd/"+name)
		text = strings.ReplaceAll(text, "ExecStart=/usr/local/bin/mirrorlet ", "ExecStart="+filepath.Join(root, "usr/local/bin/mirrorlet")+" ")
		if _, err := os.Stat("/usr/bin/containerd"); err != nil {
			stub := filepath.Join(root, "usr/bin/containerd")
			if err := os.MkdirAll(filepath.Dir(stub), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			text = strings.ReplaceAll(text, "ExecStart=/usr/bin/containerd ", "ExecStart="+stub+" ")
		}
		p := filepath.Join(units, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := command(root, nil, analyze, append([]string{"verify"}, paths...)...)
	if err != nil {
		t.Fatal(err)
	}
	// verify exits 0 on unknown keys and bad values: its warnings about our
	// units are failures too (those about the host's own units are not).
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, "mirrorlet") {
			t.Errorf("systemd-analyze verify: %s", line)
		} else if line != "" {
			t.Logf("systemd-analyze verify (not about our units): %s", line)
		}
	}
}

// TestInstallContainerd2x: --containerd 2.x adds containerd 2.x's binaries
// (from the cache hack/containerd.sh builds), its config and the drop-in
// that runs it; installing again without it removes the drop-in and warns
// that the kept config is in 2.x's format.
func TestInstallContainerd2x(t *testing.T) {
	dir, err := command(repo, nil, "bash", path("hack/containerd.sh"), "path")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(dir), "containerd")); err != nil {
		t.Skipf("containerd 2.x not built (%v): run `make containerd`", err)
	}
	root := t.TempDir()
	if _, err := command(repo, nil, "bash", path("hack/install.sh"), "--root", root, "--binary", binary(t), "--containerd", "2.x"); err != nil {
		t.Fatal(err)
	}
	got := files(t, root)
	dropin := "etc/systemd/system/containerd-mirrorlet.service.d/10-containerd-2.x.conf"
	for _, rel := range []string{dropin, "usr/local/lib/mirrorlet/containerd/bin/containerd",
		"usr/local/lib/mirrorlet/containerd/bin/containerd-shim-runc-v2", "usr/local/lib/mirrorlet/containerd/bin/ctr"} {
		if _, ok := got[rel]; !ok {
			t.Errorf("--containerd 2.x did not install %s", rel)
		}
	}
	sameContent(t, filepath.Join(root, dropin), path("deploy/systemd/containerd-mirrorlet-2.x.conf"))
	sameContent(t, filepath.Join(root, "etc/mirrorlet/containerd/config.toml"), path("deploy/containerd/config-2.x.toml"))
	if start := unitValue(read(t, "deploy/systemd/containerd-mirrorlet-2.x.conf"), "ExecStart"); !strings.HasPrefix(start, "/usr/local/lib/mirrorlet/containerd/bin/containerd ") {
		t.Errorf("the drop-in runs ExecStart=%s, not the installed containerd 2.x", start)
	}

	out := install(t, root)
	if _, err := os.Stat(filepath.Join(root, dropin)); !os.IsNotExist(err) {
		t.Errorf("installing for containerd 1.6 left the 2.x drop-in (%v)", err)
	}
	if !strings.Contains(out, "WARNING: /etc/mirrorlet/containerd/config.toml is config version 3") {
		t.Errorf("installing for 1.6 over a 2.x config does not warn:\n%s", out)
	}
}
