package security

import (
	"context"
	"net/http"
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

// TestAgentRequestsInTheNodesPriorityLevel: under deploy/rbac, an agent's
// requests are classified by the FlowSchema mirrorlet-nodes into the
// priority level "system", the kubelets' level, not into global-default
// with every user. The API server says which FlowSchema and priority level
// served each request in its response headers.
func TestAgentRequestsInTheNodesPriorityLevel(t *testing.T) {
	ctx := t.Context()
	fs := &flowcontrolv1.FlowSchema{}
	if err := admin.Get(ctx, types.NamespacedName{Name: "mirrorlet-nodes"}, fs); err != nil {
		t.Fatalf("reading the FlowSchema deploy/rbac ships: %v", err)
	}
	pl := &flowcontrolv1.PriorityLevelConfiguration{}
	if err := admin.Get(ctx, types.NamespacedName{Name: "system"}, pl); err != nil {
		t.Fatalf("reading the priority level system: %v", err)
	}
	node := newNodeName("priority")
	cfg, err := userConfig("mirrorlet:node:"+node, "mirrorlet:nodes")
	if err != nil {
		t.Fatal(err)
	}
	// The API server's configuration controller takes a moment to see a
	// new FlowSchema.
	eventually(t, "the agent's request classified by mirrorlet-nodes into system", func() bool {
		flow, level := classify(ctx, t, cfg, "/api/v1/nodes/"+node)
		t.Logf("GET its Node: FlowSchema UID %s, priority level UID %s", flow, level)
		return flow == string(fs.UID) && level == string(pl.UID)
	})
	// A user with kubectl stays in its own level.
	user, err := userConfig("someone")
	if err != nil {
		t.Fatal(err)
	}
	if flow, _ := classify(ctx, t, user, "/api/v1/namespaces/default/configmaps"); flow == string(fs.UID) {
		t.Errorf("a user's request was classified by mirrorlet-nodes")
	}
}

// classify makes a GET of path as cfg (any answer, 403 or 404 too) and
// returns the FlowSchema and priority level UIDs the API server names.
func classify(ctx context.Context, t *testing.T, cfg *rest.Config, path string) (flow, level string) {
	t.Helper()
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	_ = resp.Body.Close()
	return resp.Header.Get(flowcontrolv1.ResponseHeaderMatchedFlowSchemaUID),
		resp.Header.Get(flowcontrolv1.ResponseHeaderMatchedPriorityLevelConfigurationUID)
}
