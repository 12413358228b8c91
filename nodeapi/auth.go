package nodeapi

import (
	"fmt"
	"net/http"
	"strings"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// withAuth authenticates and authorises every request as the kubelet does:
// 401 when the caller is not authenticated, 403 when no attribute of the
// request is allowed. Only then does next run.
func (s *Server) withAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := s.cfg.Log
		resp, ok, err := s.cfg.Authenticator.AuthenticateRequest(r)
		if err != nil {
			log.V(1).Info("Unable to authenticate the request", "path", r.URL.Path, "error", err.Error())
		}
		if err != nil || !ok {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		attrs := Attributes(s.cfg.NodeName, resp.User, r)
		subresources := make([]string, 0, len(attrs))
		for _, a := range attrs {
			subresources = append(subresources, a.GetSubresource())
			decision, _, err := s.cfg.Authorizer.Authorize(r.Context(), a)
			if err != nil {
				log.Error(err, "Authorization error", "user", a.GetUser().GetName(), "verb", a.GetVerb(),
					"resource", a.GetResource(), "subresource", a.GetSubresource())
				http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=%s, subresource=%s)",
					a.GetUser().GetName(), a.GetVerb(), a.GetResource(), a.GetSubresource()), http.StatusInternalServerError)
				return
			}
			if decision == authorizer.DecisionAllow {
				next.ServeHTTP(w, r)
				return
			}
		}
		a := attrs[0]
		log.V(1).Info("Forbidden", "user", a.GetUser().GetName(), "verb", a.GetVerb(), "resource", a.GetResource(),
			"subresources", subresources, "path", r.URL.Path)
		http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=%s, subresource(s)=%v)",
			a.GetUser().GetName(), a.GetVerb(), a.GetResource(), subresources), http.StatusForbidden)
	})
}

// Attributes returns what a request to the node API must be allowed, as
// the kubelet asks (pkg/kubelet/server/auth.go with fine-grained kubelet
// authorisation): the verb of the HTTP method on nodes/<node> with the
// subresource of the path, and any one of the returned attributes being
// allowed is enough:
//
//	/stats/...    stats
//	/metrics/...  metrics
//	/logs/...     log
//	/pods/...     pods, else proxy
//	/healthz/...  healthz, else proxy
//	anything else proxy (/containerLogs, /exec, /attach, /portForward, ...)
//
// /exec, /attach and /portForward always need create, even as a WebSocket
// GET: they run commands or open connections in a container.
func Attributes(nodeName string, u user.Info, r *http.Request) []authorizer.Attributes {
	verb := verbFor(r)
	var subresources []string
	switch p := r.URL.Path; {
	case isSubpath(p, "/stats"):
		subresources = []string{"stats"}
	case isSubpath(p, "/metrics"):
		subresources = []string{"metrics"}
	case isSubpath(p, "/logs"):
		subresources = []string{"log"}
	case isSubpath(p, "/pods"):
		subresources = []string{"pods", "proxy"}
	case isSubpath(p, "/healthz"):
		subresources = []string{"healthz", "proxy"}
	default:
		subresources = []string{"proxy"}
	}
	out := make([]authorizer.Attributes, 0, len(subresources))
	for _, sub := range subresources {
		out = append(out, authorizer.AttributesRecord{
			User: u, Verb: verb, APIVersion: "v1", Resource: "nodes", Subresource: sub,
			Name: nodeName, ResourceRequest: true, Path: r.URL.Path,
		})
	}
	return out
}

// verbFor maps the HTTP method to the API verb, except for the routes that
// act on a container.
func verbFor(r *http.Request) string {
	for _, p := range []string{"/exec", "/attach", "/portForward"} {
		if isSubpath(r.URL.Path, p) {
			return "create"
		}
	}
	switch r.Method {
	case http.MethodPost:
		return "create"
	case http.MethodGet:
		return "get"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return ""
}

// isSubpath reports whether path is prefix or below it.
func isSubpath(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}
