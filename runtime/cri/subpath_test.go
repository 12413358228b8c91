package cri

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

func TestResolveSubPath(t *testing.T) {
	outside := t.TempDir()
	vol := t.TempDir()
	for _, dir := range []string{"data/conf", "real"} {
		if err := os.MkdirAll(filepath.Join(vol, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"escape":       outside,        // absolute, out of the volume
		"escape-rel":   "../../../etc", // relative, out of the volume
		"inside":       "real",         // stays inside: allowed
		"data/up":      "../real",      // stays inside through "..": allowed
		"data/abs-etc": "/etc",         // absolute: resolved beneath, refused
	}
	for link, target := range links {
		if err := os.Symlink(target, filepath.Join(vol, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		sub     string
		want    string // host path relative to vol; "" when refused
		escapes bool
	}{
		{sub: "data/conf", want: "data/conf"},
		{sub: "new/dir", want: "new/dir"}, // created
		{sub: "inside", want: "real"},
		{sub: "data/up", want: "real"},
		{sub: "escape", escapes: true},
		{sub: "escape/sub", escapes: true},
		{sub: "escape-rel", escapes: true},
		{sub: "data/abs-etc", escapes: true},
	} {
		t.Run(tc.sub, func(t *testing.T) {
			got, err := openedPath(vol, tc.sub)
			if tc.escapes {
				if !errors.Is(err, errSubPathEscapes) {
					t.Fatalf("openSubPath(%q) opened %q, %v; want it refused as leading out", tc.sub, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("openSubPath(%q): %v", tc.sub, err)
			}
			if want := filepath.Join(vol, tc.want); got != want {
				t.Errorf("openSubPath(%q) opened %q, want %q", tc.sub, got, want)
			}
			if info, err := os.Stat(got); err != nil || !info.IsDir() {
				t.Errorf("%s is not a directory: %v", got, err)
			}
		})
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("something was created outside the volume: %v", entries)
	}
}

// openedPath is the path of what openSubPath opens, as the kernel found it.
func openedPath(root, sub string) (string, error) {
	fd, err := openSubPath(root, sub)
	if err != nil {
		return "", err
	}
	defer func() { _ = unix.Close(fd) }()
	return os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
}
