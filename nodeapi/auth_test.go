package nodeapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

func TestAttributes(t *testing.T) {
	u := &user.DefaultInfo{Name: "alice"}
	for _, tc := range []struct {
		method, path string
		verb         string
		subresources []string
	}{
		{"GET", "/containerLogs/default/web-n1/web", "get", []string{"proxy"}},
		{"GET", "/exec/default/web-n1/web", "create", []string{"proxy"}},
		{"POST", "/exec/default/web-n1/web", "create", []string{"proxy"}},
		{"GET", "/attach/default/web-n1/web", "create", []string{"proxy"}},
		{"GET", "/portForward/default/web-n1", "create", []string{"proxy"}},
		{"POST", "/portForward/default/web-n1", "create", []string{"proxy"}},
		{"GET", "/stats/summary", "get", []string{"stats"}},
		{"GET", "/stats", "get", []string{"stats"}},
		{"GET", "/metrics/resource", "get", []string{"metrics"}},
		{"GET", "/metrics", "get", []string{"metrics"}},
		{"GET", "/logs/messages", "get", []string{"log"}},
		{"GET", "/pods", "get", []string{"pods", "proxy"}},
		{"GET", "/healthz", "get", []string{"healthz", "proxy"}},
		{"GET", "/healthz/ping", "get", []string{"healthz", "proxy"}},
		{"GET", "/debug/pprof/heap", "get", []string{"proxy"}},
		{"GET", "/podsX", "get", []string{"proxy"}},
		{"GET", "/statsfoo", "get", []string{"proxy"}},
		{"GET", "/executor", "get", []string{"proxy"}},
		{"PUT", "/pods", "update", []string{"pods", "proxy"}},
		{"PATCH", "/x", "patch", []string{"proxy"}},
		{"DELETE", "/x", "delete", []string{"proxy"}},
		{"POST", "/x", "create", []string{"proxy"}},
		{"OPTIONS", "/x", "", []string{"proxy"}},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			attrs := Attributes("node1", u, httptest.NewRequest(tc.method, tc.path, nil))
			var subs []string
			for _, a := range attrs {
				subs = append(subs, a.GetSubresource())
				if a.GetVerb() != tc.verb || a.GetResource() != "nodes" || a.GetName() != "node1" || a.GetAPIGroup() != "" ||
					a.GetAPIVersion() != "v1" || !a.IsResourceRequest() || a.GetUser() != u || a.GetNamespace() != "" || a.GetPath() != tc.path {
					t.Errorf("attributes %+v; want verb %q on nodes/node1", a, tc.verb)
				}
			}
			if !slices.Equal(subs, tc.subresources) {
				t.Errorf("subresources %v, want %v", subs, tc.subresources)
			}
		})
	}
}

// fakeAuthn authenticates "Bearer <user>"; "Bearer error" fails.
type fakeAuthn struct{}

func (fakeAuthn) AuthenticateRequest(r *http.Request) (*authenticator.Response, bool, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok:
		return nil, false, nil
	case tok == "error":
		return nil, false, errors.New("token review failed")
	}
	return &authenticator.Response{User: &user.DefaultInfo{Name: tok}}, true, nil
}

// fakeAuthz allows "<user> <verb> <subresource>" found in allowed; the
// user "error" gets an error.
type fakeAuthz struct {
	allowed []string
	mu      sync.Mutex // requests may be served concurrently
	asked   []string
}

func (f *fakeAuthz) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	q := a.GetUser().GetName() + " " + a.GetVerb() + " " + a.GetSubresource()
	f.mu.Lock()
	f.asked = append(f.asked, q)
	f.mu.Unlock()
	if a.GetUser().GetName() == "erroruser" {
		return authorizer.DecisionNoOpinion, "", errors.New("SAR failed")
	}
	if slices.Contains(f.allowed, q) {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionNoOpinion, "", nil
}

func TestAuthFilter(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, token string
		allowed                   []string
		wantCode                  int
		wantBody                  string
	}{
		{name: "anonymous refused", method: "GET", path: "/healthz", wantCode: 401, wantBody: "Unauthorized"},
		{name: "authn error", method: "GET", path: "/healthz", token: "error", wantCode: 401, wantBody: "Unauthorized"},
		{name: "forbidden", method: "GET", path: "/containerLogs/default/web-n1/web", token: "bob", wantCode: 403,
			wantBody: "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[proxy])"},
		{name: "pods/get is not nodes/proxy", method: "GET", path: "/containerLogs/default/web-n1/web", token: "bob",
			allowed: []string{"bob get log", "bob get pods"}, wantCode: 403},
		{name: "exec over GET needs create", method: "GET", path: "/exec/default/web-n1/web", token: "bob",
			allowed: []string{"bob get proxy"}, wantCode: 403, wantBody: "verb=create"},
		{name: "exec allowed", method: "GET", path: "/exec/default/web-n1/web", token: "bob",
			allowed: []string{"bob create proxy"}, wantCode: 501, wantBody: "exec is not implemented"},
		{name: "healthz by subresource", method: "GET", path: "/healthz", token: "bob", allowed: []string{"bob get healthz"}, wantCode: 200, wantBody: "ok"},
		{name: "healthz by proxy", method: "GET", path: "/healthz", token: "bob", allowed: []string{"bob get proxy"}, wantCode: 200, wantBody: "ok"},
		{name: "stats not by proxy", method: "GET", path: "/stats/summary", token: "bob", allowed: []string{"bob get proxy"}, wantCode: 403,
			wantBody: "subresource(s)=[stats]"},
		{name: "authz error", method: "GET", path: "/healthz", token: "erroruser", wantCode: 500, wantBody: "Authorization error (user=erroruser"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			authz := &fakeAuthz{allowed: tc.allowed}
			s := newTestServer(t, authz, nil, "")
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.wantCode || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q (asked %v)", rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody, authz.asked)
			}
		})
	}
}

func TestRouteNotReachedWhenRefused(t *testing.T) {
	reached := false
	authz := &fakeAuthz{}
	s, err := New(Config{NodeName: "n1", Port: 1, Authenticator: fakeAuthn{}, Authorizer: authz, Pods: fakePods{},
		Exec: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true })})
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"", "bob"} {
		req := httptest.NewRequest("POST", "/exec/default/web-n1/web?command=id", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		s.Handler().ServeHTTP(httptest.NewRecorder(), req)
	}
	if reached {
		t.Fatal("a refused request reached the exec handler")
	}
}
