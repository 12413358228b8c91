package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogsCommand runs `mirrorlet logs` on a log directory laid out as
// runtime/cri writes it, with flags and with a config file under them.
func TestLogsCommand(t *testing.T) {
	logsDir := t.TempDir()
	for _, f := range []struct{ path, line string }{
		{"default_web-node1_u1/web/0.log", "2026-07-01T12:00:00Z stdout F first attempt"},
		{"default_web-node1_u1/web/1.log", "2026-07-01T12:01:00Z stdout F second attempt"},
		{"default_web-node2_u2/web/0.log", "2026-07-01T12:00:00Z stdout F on node2"},
	} {
		path := filepath.Join(logsDir, f.path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(f.line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("apiVersion: config.mirrorlet.io/v1alpha1\nkind: MirrorletConfiguration\n"+
		"nodeName: Node2\npodLogsDir: "+logsDir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{name: "static pod name", args: []string{"web", "--pod-logs-dir", logsDir, "--node-name", "node1"}, want: "second attempt\n"},
		{name: "mirror name, previous", args: []string{"web-node1", "-p", "--pod-logs-dir", logsDir}, want: "first attempt\n"},
		{name: "timestamps", args: []string{"web-node1", "--timestamps", "--pod-logs-dir", logsDir},
			want: "2026-07-01T12:01:00.000000000Z second attempt\n"},
		{name: "config file", args: []string{"web", "--config", cfg}, want: "on node2\n"},
		{name: "flags override the config file", args: []string{"web", "--config", cfg, "--node-name", "node1"}, want: "second attempt\n"},
		{name: "unknown container", args: []string{"web", "-c", "db", "--config", cfg}, wantErr: "no logs of container db of pod web-node2"},
		{name: "unknown namespace", args: []string{"web", "-n", "kube-system", "--config", cfg},
			wantErr: "no logs of pod web in namespace kube-system under " + logsDir},
		{name: "bad config file", args: []string{"web", "--config", logsDir + "/missing.yaml"}, wantErr: "reading config file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newRootCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(append([]string{"logs"}, tc.args...))
			err := cmd.Execute()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Fatalf("output %q, want %q", out.String(), tc.want)
			}
		})
	}
}
