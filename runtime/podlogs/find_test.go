package podlogs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// logFile writes <dir>/<ns>_<pod>_<uid>/<container>/<attempt>.log with
// lines, each followed by a newline, and returns its path.
func logFile(t *testing.T, dir, podDir, container string, attempt int, lines ...string) string {
	t.Helper()
	path := filepath.Join(dir, podDir, container, strconv.Itoa(attempt)+".log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func touch(t *testing.T, path string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	logFile(t, dir, "default_web-node1_uid1", "web", 0)
	// Two instances of db: the one written last wins, whatever its UID.
	touch(t, logFile(t, dir, "default_db-node1_b-old", "db", 0), old)
	logFile(t, dir, "default_db-node1_a-new", "db", 0)
	// An exact name wins over <name>-<node>.
	logFile(t, dir, "default_api_uid2", "api", 0)
	logFile(t, dir, "default_api-node1_uid3", "api", 0)
	logFile(t, dir, "kube-system_web-node1_uid4", "web", 0)
	logFile(t, dir, "default_multi-node1_uid5", "a", 0)
	logFile(t, dir, "default_multi-node1_uid5", "b", 0)
	if err := os.MkdirAll(filepath.Join(dir, "default_empty-node1_uid6"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "not-a-pod-dir"), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		q         Query
		wantDir   string
		wantErr   []string
		wantNoErr bool
	}{
		{name: "mirror name", q: Query{Pod: "web-node1", Node: "node1"}, wantDir: "default_web-node1_uid1/web"},
		{name: "static pod name", q: Query{Pod: "web", Node: "node1"}, wantDir: "default_web-node1_uid1/web"},
		{name: "node name lower-cased", q: Query{Pod: "web", Node: "Node1"}, wantDir: "default_web-node1_uid1/web"},
		{name: "namespace", q: Query{Namespace: "kube-system", Pod: "web", Node: "node1"}, wantDir: "kube-system_web-node1_uid4/web"},
		{name: "newest instance", q: Query{Pod: "db", Node: "node1"}, wantDir: "default_db-node1_a-new/db"},
		{name: "instance by UID", q: Query{Pod: "db-node1", UID: "b-old"}, wantDir: "default_db-node1_b-old/db"},
		{name: "unknown UID", q: Query{Pod: "db-node1", UID: "c"}, wantErr: []string{"no logs of pod db-node1"}},
		{name: "exact name first", q: Query{Pod: "api", Node: "node1"}, wantDir: "default_api_uid2/api"},
		{name: "container given", q: Query{Pod: "multi", Node: "node1", Container: "b"}, wantDir: "default_multi-node1_uid5/b"},
		{name: "no such pod", q: Query{Pod: "nope", Node: "node1"},
			wantErr: []string{"no logs of pod nope in namespace default under " + dir,
				"default_nope_<uid> and default_nope-node1_<uid>", "pods with logs there: [api api-node1 db-node1 empty-node1 multi-node1 web-node1]"}},
		{name: "other node", q: Query{Pod: "web", Node: "node2"}, wantErr: []string{"default_web-node2_<uid>"}},
		{name: "namespace without pods", q: Query{Namespace: "other", Pod: "web", Node: "node1"},
			wantErr: []string{"in namespace other", "pods with logs there: none"}},
		{name: "several containers", q: Query{Pod: "multi", Node: "node1"},
			wantErr: []string{"a container name must be specified for pod multi-node1, choose one of: [a b]"}},
		{name: "unknown container", q: Query{Pod: "multi", Node: "node1", Container: "c"},
			wantErr: []string{"no logs of container c of pod multi-node1 in " + filepath.Join(dir, "default_multi-node1_uid5"), "[a b]"}},
		{name: "no containers", q: Query{Pod: "empty", Node: "node1"}, wantErr: []string{"pod empty-node1 has no container logs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.LogsDir = dir
			if tc.q.Namespace == "" {
				tc.q.Namespace = "default"
			}
			c, err := Find(tc.q)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("found %+v, want an error", c)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, tc.wantDir); c.Dir != want {
				t.Fatalf("dir %s, want %s", c.Dir, want)
			}
		})
	}
}

func TestFindMissingLogsDir(t *testing.T) {
	_, err := Find(Query{LogsDir: filepath.Join(t.TempDir(), "missing"), Namespace: "default", Pod: "web"})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("err = %v, want one naming the directory", err)
	}
}

func TestAttempts(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 2, 1} {
		logFile(t, dir, "default_web-n_u", "web", n)
	}
	// Not attempts: rotated or other files.
	for _, name := range []string{"0.log.20260701-120000", "x.log", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, "default_web-n_u", "web", name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Find(Query{LogsDir: dir, Namespace: "default", Pod: "web", Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	all, err := c.Attempts()
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, a := range all {
		got = append(got, a.N)
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 2 {
		t.Fatalf("attempts %v, want [0 1 2]", got)
	}
	for _, tc := range []struct {
		previous bool
		want     string
	}{{false, "2.log"}, {true, "1.log"}} {
		a, err := c.attempt(tc.previous)
		if err != nil || filepath.Base(a.Path) != tc.want {
			t.Errorf("previous=%v: %v (%v), want %s", tc.previous, a.Path, err, tc.want)
		}
	}
}

func TestAttemptErrors(t *testing.T) {
	dir := t.TempDir()
	logFile(t, dir, "default_one-n_u", "web", 3)
	if err := os.MkdirAll(filepath.Join(dir, "default_none-n_u", "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pod      string
		previous bool
		want     string
	}{
		{"one", true, "container web of pod one-n has no previous attempt: only " + filepath.Join(dir, "default_one-n_u", "web", "3.log")},
		{"none", false, "no log files of container web of pod none-n in " + filepath.Join(dir, "default_none-n_u", "web")},
	} {
		c, err := Find(Query{LogsDir: dir, Namespace: "default", Pod: tc.pod, Node: "n"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.attempt(tc.previous); err == nil || err.Error() != tc.want {
			t.Errorf("%s previous=%v: err = %v, want %q", tc.pod, tc.previous, err, tc.want)
		}
	}
}
