// Package servingcert provides the node API's serving certificate, from
// one of three sources, in the order mirrorlet tries them (the kubelet's):
//
//   - FromFiles: a certificate and key given by the operator
//     (--tls-cert-file, --tls-private-key-file), read again when they
//     change;
//   - FromCluster: a certificate requested from the cluster by a
//     CertificateSigningRequest for the signer kubernetes.io/kubelet-serving
//     (CN system:node:<node>, O system:nodes, the node's addresses as SANs),
//     kept under <root-dir>/pki and renewed before it expires
//     (--rotate-server-certificates), by client-go's certificate manager;
//   - SelfSigned: a self-signed certificate generated into <root-dir>/pki
//     (key 0600) and reused while it is valid for the node's addresses. The
//     API server cannot verify it, and mirrorlet says so in its log.
//
// Every Source serves its current certificate through GetCertificate, for
// tls.Config, and keeps it current in Run.
package servingcert
