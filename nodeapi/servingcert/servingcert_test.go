package servingcert

import (
	"bytes"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr/testr"
)

func TestSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	names := Names{Host: "node1", IPs: []net.IP{net.ParseIP("192.0.2.7")}, DNS: []string{"node1"}}
	first := leaf(t, mustSelfSigned(t, dir, names))
	if first.IPAddresses[0].String() != "192.0.2.7" || first.DNSNames[0] != "node1" {
		t.Fatalf("SANs %v %v", first.IPAddresses, first.DNSNames)
	}
	for name, want := range map[string]os.FileMode{SelfSignedKeyName: 0o600, "": 0o700} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || info.Mode().Perm() != want {
			t.Fatalf("%s: %v mode %v, want %v", name, err, info.Mode().Perm(), want)
		}
	}
	// Restarted with the same names: the same certificate.
	if again := leaf(t, mustSelfSigned(t, dir, names)); !bytes.Equal(again.Raw, first.Raw) {
		t.Fatal("a valid certificate was not reused")
	}
	// The node's address changed: a new certificate for it.
	names.IPs = []net.IP{net.ParseIP("192.0.2.8")}
	if moved := leaf(t, mustSelfSigned(t, dir, names)); moved.IPAddresses[0].String() != "192.0.2.8" {
		t.Fatalf("certificate for %v, want 192.0.2.8", moved.IPAddresses)
	}
	// An operator's files: served as they are.
	f, err := FromFiles(filepath.Join(dir, SelfSignedCertName), filepath.Join(dir, SelfSignedKeyName))
	if err != nil {
		t.Fatal(err)
	}
	if got := leaf(t, f); got.IPAddresses[0].String() != "192.0.2.8" {
		t.Fatalf("FromFiles served %v", got.IPAddresses)
	}
	if _, err := FromFiles(filepath.Join(dir, "missing.crt"), filepath.Join(dir, SelfSignedKeyName)); err == nil {
		t.Fatal("FromFiles accepted a missing file")
	}
}

func mustSelfSigned(t *testing.T, dir string, names Names) Source {
	t.Helper()
	s, err := SelfSigned(dir, names, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func leaf(t *testing.T, s Source) *x509.Certificate {
	t.Helper()
	cert, err := s.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return l
}
