package lastgood

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestStorePersistsAcrossOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lastgood")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("/etc/m/web.yaml", []byte("web v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("https://h/pods#api", []byte("api v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("/etc/m/web.yaml", []byte("web v2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("/etc/m/gone.yaml", []byte("gone")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("/etc/m/gone.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("/etc/m/never.yaml"); err != nil {
		t.Errorf("deleting a missing key: %v", err)
	}

	// What a restarted mirrorlet sees.
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s2.Keys(), []string{"/etc/m/web.yaml", "https://h/pods#api"}; !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	if e, ok := s2.Get("/etc/m/web.yaml"); !ok || string(e.Data) != "web v2" || e.Saved.IsZero() {
		t.Errorf("Get = %+v, %v; want the last version put", e, ok)
	}
	if _, ok := s2.Get("/etc/m/gone.yaml"); ok {
		t.Errorf("a deleted key came back")
	}
	info, err := os.Stat(dir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("store directory mode %v (%v), want 0700", info.Mode().Perm(), err)
	}
}

func TestStoreSkipsUnchangedContent(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("k", []byte("same")); err != nil {
		t.Fatal(err)
	}
	path := s.path("k")
	before, _ := os.Stat(path)
	if err := os.Chmod(path, 0o400); err != nil { // a rewrite would replace the file and its mode
		t.Fatal(err)
	}
	if err := s.Put("k", []byte("same")); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if after.Mode().Perm() != 0o400 || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("unchanged content was written again")
	}
}

func TestStoreDropsTornAndForeignFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("good", []byte("ok")); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		".tmp-123":                 "half a write",              // a crash before the rename
		"deadbeef.json":            `{"key":"x","data":"b2s="}`, // named for another key
		"0123abcd.json":            `{"key":`,                   // torn
		s.path("bad")[len(dir)+1:]: "not json",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.Keys(); !slices.Equal(got, []string{"good"}) {
		t.Errorf("keys %v, want only the good entry", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files left in the store, want 1", len(entries))
	}
}
