package nodetest

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// MountPoints returns the mount point of every entry of this process's
// mount table (/proc/self/mountinfo), in its order.
func MountPoints(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 {
			out = append(out, fields[4])
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("reading /proc/self/mountinfo: %v", err)
	}
	return out
}
