package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const header = "apiVersion: config.mirrorlet.io/v1alpha1\nkind: MirrorletConfiguration\n"

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		wantErr       []string
		check         func(*MirrorletConfiguration) bool
	}{
		{"defaults", header, nil, func(c *MirrorletConfiguration) bool {
			return c.FileCheckFrequency.Duration == 20*time.Second && *c.RegisterNode && *c.KubeAPIQPS < 0
		}},
		{"full", header + "nodeName: n1\nstaticPodPath: /etc/m\nstaticPodURL: https://x/pods\nstaticPodURLHeader: {A: [b]}\n" +
			"fileCheckFrequency: 5s\nnodeLabels: {zone: a}\nregisterNode: false\nkubeAPIQPS: 5\nmetricsBindAddress: \"0\"\n", nil,
			func(c *MirrorletConfiguration) bool {
				return c.NodeName == "n1" && c.FileCheckFrequency.Duration == 5*time.Second && !*c.RegisterNode &&
					c.StaticPodURLHeader["A"][0] == "b" && c.NodeLabels["zone"] == "a" && c.MetricsBindAddress == "0"
			}},
		{"node API", header + "nodeIP: 10.0.0.2\nport: 0\ntlsCertFile: /c\ntlsPrivateKeyFile: /k\nauthentication: {x509: {clientCAFile: /ca}, anonymous: {enabled: true}}\n", nil,
			func(c *MirrorletConfiguration) bool {
				return c.NodeIP == "10.0.0.2" && *c.Port == 0 && c.Address == "0.0.0.0" && c.TLSCertFile == "/c" &&
					c.Authentication.X509.ClientCAFile == "/ca" && *c.Authentication.Anonymous.Enabled && *c.Authentication.Webhook.Enabled
			}},
		{"node API defaults", header, nil, func(c *MirrorletConfiguration) bool {
			return *c.Port == 10250 && !*c.Authentication.Anonymous.Enabled && *c.Authentication.Webhook.Enabled && !c.RotateServerCertificates &&
				!*c.EnableProfilingHandler && !c.EnableContentionProfiling
		}},
		{"profiling", header + "enableProfilingHandler: true\nenableContentionProfiling: true\n", nil, func(c *MirrorletConfiguration) bool {
			return *c.EnableProfilingHandler && c.EnableContentionProfiling
		}},
		{"bad node API", header + "nodeIP: node1\naddress: any\nport: 70000\ntlsCertFile: /c\n", []string{"nodeIP: Invalid value",
			"address: Invalid value", "port: Invalid value", "tlsPrivateKeyFile: Required value"}, nil},
		{"wrong kind", "apiVersion: v1\nkind: Pod\n", []string{"apiVersion/kind: Invalid value"}, nil},
		{"unknown field", header + "staticPodPaht: /x\n", []string{`unknown field "staticPodPaht"`}, nil},
		{"bad values", header + "nodeName: Bad_Name\nfileCheckFrequency: 10ms\nstaticPodURL: ftp://x\ncontainerRuntimeEndpoint: tcp://x\n" +
			"nodeLabels: {\"bad key!\": v}\nkubeAPIBurst: 0\nhealthzBindAddress: nope\n",
			[]string{"config.yaml: nodeName: Invalid value", "fileCheckFrequency: Invalid value: \"10ms\": must be at least 1s",
				"staticPodURL: Invalid value", "containerRuntimeEndpoint: Invalid value", "nodeLabels[bad key!]",
				"kubeAPIBurst: Invalid value", "healthzBindAddress: Invalid value"}, nil},
		{"not yaml", "{{{", []string{"config.yaml: parsing YAML"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, tc.content))
			if len(tc.wantErr) == 0 {
				if err != nil || !tc.check(c) {
					t.Fatalf("Load: %v, %+v", err, c)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load accepted %q", tc.content)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestPrintedDefaultsLoad(t *testing.T) {
	out, err := Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(write(t, string(out))); err != nil {
		t.Fatalf("print-defaults output does not load: %v\n%s", err, out)
	}
}

func TestFromKubelet(t *testing.T) {
	kubelet := write(t, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: /etc/kubernetes/manifests
staticPodURL: http://cfg/pods
staticPodURLHeader: {Authorization: ["Bearer t"]}
fileCheckFrequency: 7s
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
cgroupDriver: systemd
`)
	c := Default()
	if err := FromKubelet(kubelet, c); err != nil {
		t.Fatal(err)
	}
	if c.StaticPodPath != "/etc/kubernetes/manifests" || c.StaticPodURL != "http://cfg/pods" ||
		c.StaticPodURLHeader["Authorization"][0] != "Bearer t" || c.FileCheckFrequency.Duration != 7*time.Second {
		t.Errorf("static pod settings not taken: %+v", c)
	}
	if c.ContainerRuntimeEndpoint == "unix:///run/containerd/containerd.sock" {
		t.Errorf("took the kubelet's container runtime; mirrorlet must not share it")
	}
	if err := FromKubelet(write(t, header), Default()); err == nil {
		t.Errorf("a MirrorletConfiguration was accepted as a kubelet config")
	}
}
