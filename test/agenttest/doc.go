// Package agenttest runs mirrorlet in-process for tests against a real API
// server (envtest), the way main runs it, with the fake runtime: one Agent
// per node, with its own manifest directory, identity and log, stopped when
// the test ends. The suites in test/integration, test/security and
// test/credentials share it.
package agenttest
