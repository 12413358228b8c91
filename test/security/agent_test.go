package security

import (
	"testing"

	"github.com/mirrorlet/mirrorlet/test/agenttest"
)

// agent is one mirrorlet run in-process (see package agenttest).
type agent = agenttest.Agent

// startAgent runs mirrorlet for node as user mirrorlet:node:<node> in group
// mirrorlet:nodes until the test ends; the test reads mirrors as the admin.
func startAgent(t testing.TB, node string) *agent {
	t.Helper()
	cfg, err := userConfig("mirrorlet:node:"+node, "mirrorlet:nodes")
	if err != nil {
		t.Fatal(err)
	}
	return agenttest.Start(t, node, agenttest.Config{RestConfig: cfg, Reader: admin})
}

var (
	podManifest = agenttest.PodManifest
	isRunning   = agenttest.IsRunning
)
