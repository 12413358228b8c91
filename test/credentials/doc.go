// Package credentials tests mirrorlet with the credentials a node really
// has, against an API server that checks them (envtest, with the Node
// authorizer, RBAC and the NodeRestriction admission plugin): a kubelet's
// system:node:<name> identity, a client certificate issued through a
// CertificateSigningRequest and rotated by mirrorlet, and the local files
// (manifests, kubeconfig) mirrorlet refuses to trust.
//
// The suite starts its own API server with a client CA the test holds, so
// that the test can play the CSR signer the controller manager would be.
package credentials
