package faults

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// auditEvent is the part of an API server audit event the tests read.
type auditEvent struct {
	Verb      string                    `json:"verb"`
	User      struct{ Username string } `json:"user"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Name        string `json:"name"`
		UID         string `json:"uid"`
	} `json:"objectRef"`
	// RequestObject is a delete's options (pod deletes only).
	RequestObject struct {
		GracePeriodSeconds *int64 `json:"gracePeriodSeconds"`
		Preconditions      struct {
			UID string `json:"uid"`
		} `json:"preconditions"`
	} `json:"requestObject"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	StageTimestamp time.Time `json:"stageTimestamp"`
}

// writesBy returns the audited writes (ResponseComplete) of user since
// since, matching verb and resource ("" for any).
func writesBy(t testing.TB, user, verb, resource string, since time.Time) []auditEvent {
	t.Helper()
	f, err := os.Open(cp.path("audit.log"))
	if err != nil {
		t.Fatalf("reading the audit log: %v", err)
	}
	defer func() { _ = f.Close() }()
	var out []auditEvent
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		var e auditEvent
		if json.Unmarshal(s.Bytes(), &e) != nil || (user != "" && e.User.Username != user) || e.StageTimestamp.Before(since) {
			continue
		}
		if (verb == "" || e.Verb == verb) && (resource == "" || e.ObjectRef.Resource == resource) {
			out = append(out, e)
		}
	}
	return out
}

// user is the API identity of the agent's mirrorlet.
func (a *agent) user() string { return "mirrorlet:node:" + a.name }
