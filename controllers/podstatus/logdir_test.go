package podstatus

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

type fakeLogDir struct{ problem error }

func (f fakeLogDir) Problem() error                   { return f.problem }
func (f fakeLogDir) Subscribe(func()) (cancel func()) { return func() {} }

// The LogsWritable condition follows the log directory's state, and is
// absent without a log directory checker (the fake runtime).
func TestLogsWritableCondition(t *testing.T) {
	full := errors.New("pod log directory /logs: no space left")
	for _, tc := range []struct {
		name    string
		logDir  LogDirStatus
		want    corev1.ConditionStatus
		message string
	}{
		{"no checker", nil, "", ""},
		{"writable", fakeLogDir{}, corev1.ConditionTrue, ""},
		{"full", fakeLogDir{full}, corev1.ConditionFalse, full.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Compute(Input{Spec: &corev1.PodSpec{}, Now: time.Now(), LogDir: tc.logDir})
			var got corev1.PodCondition
			for _, c := range st.Conditions {
				if c.Type == ConditionLogsWritable {
					got = c
				}
			}
			if got.Status != tc.want || got.Message != tc.message {
				t.Errorf("condition %s %q, want %s %q", got.Status, got.Message, tc.want, tc.message)
			}
		})
	}
}
