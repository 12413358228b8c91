package servingcert

import (
	"bytes"
	"context"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/util/wait"
	certutil "k8s.io/client-go/util/cert"
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

// TestFromFilesReloads: replacing the files (as cert-manager or a renewal
// script does) changes the served certificate without a restart.
func TestFromFilesReloads(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
	writePair := func(host string) {
		certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey(host, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writePair("first")
	src, err := FromFiles(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	go src.Run(t.Context())
	if got := leaf(t, src).Subject.CommonName; !strings.HasPrefix(got, "first@") {
		t.Fatalf("serving %q, want first@...", got)
	}
	writePair("second")
	err = wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return strings.HasPrefix(leaf(t, src).Subject.CommonName, "second@"), nil
	})
	if err != nil {
		t.Fatalf("still serving %q after the files changed", leaf(t, src).Subject.CommonName)
	}
}
