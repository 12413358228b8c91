package app

import (
	"crypto/x509/pkix"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
)

func TestSignerFor(t *testing.T) {
	for _, tc := range []struct {
		subject pkix.Name
		want    string
	}{
		{pkix.Name{CommonName: "mirrorlet:node:n1", Organization: []string{"mirrorlet:nodes"}}, certificatesv1.KubeAPIServerClientSignerName},
		{pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}, certificatesv1.KubeAPIServerClientKubeletSignerName},
		// The kubelet signer only signs exactly system:nodes.
		{pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes", "other"}}, certificatesv1.KubeAPIServerClientSignerName},
		{pkix.Name{CommonName: "system:node:n1"}, certificatesv1.KubeAPIServerClientSignerName},
	} {
		if got := SignerFor(tc.subject); got != tc.want {
			t.Errorf("SignerFor(%s) = %s, want %s", tc.subject, got, tc.want)
		}
	}
}
