// Package security proves mirrorlet's least-privilege model against a real
// kube-apiserver (envtest) run with --authorization-mode=Node,RBAC and the
// NodeRestriction admission plugin: it applies the RBAC in deploy/rbac and
// the ValidatingAdmissionPolicies in deploy/admission as they are shipped,
// and makes every request that is being proven with a real identity (a
// client certificate per user), never the admin's. The agent runs in-process
// (app.Run with the fake runtime) as user mirrorlet:node:<node> in group
// mirrorlet:nodes. KUBEBUILDER_ASSETS must point at the binaries
// hack/build-envtest.sh builds; `make test` sets it.
package security
