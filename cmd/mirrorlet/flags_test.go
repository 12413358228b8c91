package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
)

func TestFlagsOverrideConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "mirrorlet.yaml")
	if err := os.WriteFile(cfgFile, []byte(`apiVersion: config.mirrorlet.io/v1alpha1
kind: MirrorletConfiguration
nodeName: from-file
staticPodPath: /file/manifests
fileCheckFrequency: 7s
kubeconfig: /file/kubeconfig
staticPodURLHeader: {A: [file]}
nodeLabels: {zone: file}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name                   string
		args                   []string
		node, path, kubeconfig string
		freq                   time.Duration
		header, zone           string
	}{
		{"file only", []string{"--config", cfgFile}, "from-file", "/file/manifests", "/file/kubeconfig", 7 * time.Second, "file", "file"},
		{"flags win", []string{"--config", cfgFile, "--node-name", "from-flag", "--file-check-frequency", "3s",
			"--manifest-url-header", "A:flag", "--node-labels", "zone=flag"}, "from-flag", "/file/manifests", "/file/kubeconfig", 3 * time.Second, "flag", "flag"},
		{"flag before --config", []string{"--pod-manifest-path", "/flag/m", "--config", cfgFile}, "from-file", "/flag/m", "/file/kubeconfig", 7 * time.Second, "file", "file"},
		{"no file", []string{"--node-name", "n", "--pod-manifest-path", "/m"}, "n", "/m", "", 20 * time.Second, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fl := newAgentFlags()
			cmd := newAgentCommand(fl)
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			opts, kubeconfig, err := fl.options(cmd.Flags())
			if err != nil {
				t.Fatal(err)
			}
			if opts.NodeName != tc.node || opts.PodManifestPath != tc.path || kubeconfig != tc.kubeconfig ||
				opts.FileCheckFrequency != tc.freq || opts.ManifestURLHeader.Get("A") != tc.header || opts.NodeLabels["zone"] != tc.zone {
				t.Errorf("got node %q path %q kubeconfig %q freq %s header %q zone %q", opts.NodeName, opts.PodManifestPath,
					kubeconfig, opts.FileCheckFrequency, opts.ManifestURLHeader.Get("A"), opts.NodeLabels["zone"])
			}
		})
	}
}

// TestSubcommandHelpListsItsFlags: the root's grouped usage must not hide
// a subcommand's own flags.
func TestSubcommandHelpListsItsFlags(t *testing.T) {
	for sub, flag := range map[string]string{"validate": "--server-dry-run", "logs": "--previous", "status": "--healthz-bind-address"} {
		cmd := newRootCommand()
		var out strings.Builder
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs([]string{sub, "--help"})
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%s --help: %v", sub, err)
		}
		if !strings.Contains(out.String(), flag) {
			t.Errorf("mirrorlet %s --help does not list %s:\n%s", sub, flag, out.String())
		}
	}
}

// TestNodeAPIFlags: the node API's kubelet flags reach the options, over
// the config file.
func TestNodeAPIFlags(t *testing.T) {
	fl := newAgentFlags()
	cmd := newAgentCommand(fl)
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	opts, _, err := fl.options(cmd.Flags())
	if err != nil {
		t.Fatal(err)
	}
	if o := opts.NodeAPI; o.Port != 10250 || o.Address != "0.0.0.0" || o.AnonymousAuth || !o.WebhookAuth || opts.NodeIP != "" ||
		o.EnableProfilingHandler || o.EnableContentionProfiling {
		t.Fatalf("defaults %+v node IP %q", o, opts.NodeIP)
	}
	fl = newAgentFlags()
	cmd = newAgentCommand(fl)
	if err := cmd.ParseFlags([]string{"--port", "10350", "--address", "127.0.0.1", "--node-ip", "10.1.2.3",
		"--client-ca-file", "/ca", "--anonymous-auth", "--authentication-token-webhook=false", "--rotate-server-certificates",
		"--tls-cert-file", "/c", "--tls-private-key-file", "/k", "--enable-profiling-handler", "--contention-profiling"}); err != nil {
		t.Fatal(err)
	}
	if opts, _, err = fl.options(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	want := app.NodeAPIOptions{Address: "127.0.0.1", Port: 10350, TLSCertFile: "/c", TLSPrivateKeyFile: "/k",
		RotateServerCertificates: true, ClientCAFile: "/ca", AnonymousAuth: true,
		EnableProfilingHandler: true, EnableContentionProfiling: true}
	if opts.NodeAPI != want || opts.NodeIP != "10.1.2.3" {
		t.Fatalf("options %+v node IP %q, want %+v", opts.NodeAPI, opts.NodeIP, want)
	}
}

// TestSecurityFlagsAndConfig: the security settings come from the config
// file (kubelet's rotateCertificates name) and from flags.
func TestSecurityFlagsAndConfig(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "mirrorlet.yaml")
	if err := os.WriteFile(cfgFile, []byte(`apiVersion: config.mirrorlet.io/v1alpha1
kind: MirrorletConfiguration
kubeconfig: /etc/mirrorlet/kubeconfig
rotateCertificates: true
staticPodURLAllowHTTP: true
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args                          []string
		rotate, allowHTTP, allowPerms bool
	}{
		{[]string{"--config", cfgFile}, true, true, false},
		{[]string{"--config", cfgFile, "--rotate-certificates=false", "--allow-insecure-manifest-permissions"}, false, true, true},
		{[]string{"--manifest-url-allow-http", "--rotate-certificates"}, true, true, false},
		{nil, false, false, false},
	} {
		fl := newAgentFlags()
		cmd := newAgentCommand(fl)
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		opts, _, err := fl.options(cmd.Flags())
		if err != nil {
			t.Fatal(err)
		}
		if opts.RotateCertificates != tc.rotate || opts.ManifestURLAllowHTTP != tc.allowHTTP ||
			opts.AllowInsecureManifestPermissions != tc.allowPerms {
			t.Errorf("%v: rotate %v allowHTTP %v allowPerms %v", tc.args, opts.RotateCertificates,
				opts.ManifestURLAllowHTTP, opts.AllowInsecureManifestPermissions)
		}
	}
}

// TestRuntimeRequestTimeout: --runtime-request-timeout (config
// runtimeRequestTimeout) reaches the options; default 2m.
func TestRuntimeRequestTimeout(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "mirrorlet.yaml")
	if err := os.WriteFile(cfgFile, []byte("apiVersion: config.mirrorlet.io/v1alpha1\nkind: MirrorletConfiguration\n"+
		"staticPodPath: /m\nruntimeRequestTimeout: 30s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"--pod-manifest-path", "/m"}, 2 * time.Minute},
		{[]string{"--config", cfgFile}, 30 * time.Second},
		{[]string{"--config", cfgFile, "--runtime-request-timeout", "3s"}, 3 * time.Second},
	} {
		fl := newAgentFlags()
		cmd := newAgentCommand(fl)
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		opts, _, err := fl.options(cmd.Flags())
		if err != nil {
			t.Fatal(err)
		}
		if opts.RuntimeRequestTimeout != tc.want {
			t.Errorf("%v: runtime request timeout %s, want %s", tc.args, opts.RuntimeRequestTimeout, tc.want)
		}
	}
}

// TestSyncFrequency: --sync-frequency (config syncFrequency) sets the pod
// workers' resync period, 1m by default as on the kubelet.
func TestSyncFrequency(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "mirrorlet.yaml")
	if err := os.WriteFile(cfgFile, []byte("apiVersion: config.mirrorlet.io/v1alpha1\nkind: MirrorletConfiguration\n"+
		"staticPodPath: /m\nsyncFrequency: 30s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"--pod-manifest-path", "/m"}, time.Minute},
		{[]string{"--config", cfgFile}, 30 * time.Second},
		{[]string{"--config", cfgFile, "--sync-frequency", "2m"}, 2 * time.Minute},
		{[]string{"--pod-manifest-path", "/m", "--sync-frequency", "100ms"}, 0},
	} {
		fl := newAgentFlags()
		cmd := newAgentCommand(fl)
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		opts, _, err := fl.options(cmd.Flags())
		if tc.want == 0 {
			if err == nil || !strings.Contains(err.Error(), "syncFrequency") {
				t.Errorf("%v: error %v, want syncFrequency invalid", tc.args, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if opts.ResyncPeriod != tc.want {
			t.Errorf("%v: sync frequency %s, want %s", tc.args, opts.ResyncPeriod, tc.want)
		}
	}
}

// TestKubeAPIQPS: by default mirrorlet's API client has no client-side
// rate limiter (the API server's Priority and Fairness is the guard);
// --kube-api-qps (config kubeAPIQPS) sets one, as on the kubelet.
func TestKubeAPIQPS(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "mirrorlet.yaml")
	if err := os.WriteFile(cfgFile, []byte("apiVersion: config.mirrorlet.io/v1alpha1\nkind: MirrorletConfiguration\n"+
		"staticPodPath: /m\nkubeAPIQPS: 20\nkubeAPIBurst: 40\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		limited bool
		qps     float32
	}{
		{[]string{"--pod-manifest-path", "/m"}, false, -1},
		{[]string{"--config", cfgFile}, true, 20},
		{[]string{"--pod-manifest-path", "/m", "--kube-api-qps", "5", "--kube-api-burst", "10"}, true, 5},
	} {
		fl := newAgentFlags()
		cmd := newAgentCommand(fl)
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		if _, _, err := fl.options(cmd.Flags()); err != nil {
			t.Fatal(err)
		}
		rc := &rest.Config{Host: "http://127.0.0.1:1"}
		fl.cfg.limitClient(rc)
		rc.GroupVersion, rc.NegotiatedSerializer = &corev1.SchemeGroupVersion, scheme.Codecs.WithoutConversion()
		c, err := rest.RESTClientFor(rc)
		if err != nil {
			t.Fatal(err)
		}
		if limited := c.GetRateLimiter() != nil; limited != tc.limited || rc.QPS != tc.qps {
			t.Errorf("%v: QPS %v, client-side limiter %v; want QPS %v, limiter %v", tc.args, rc.QPS, limited, tc.qps, tc.limited)
		}
	}
}
