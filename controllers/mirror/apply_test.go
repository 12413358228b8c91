package mirror

import (
	"encoding/json"
	"testing"
)

// contains says whether what mirrorlet owns (have) still holds what it
// wants; what admission adds does not count against it.
func TestContains(t *testing.T) {
	for _, tc := range []struct {
		name       string
		have, want string
		ok         bool
	}{
		{"equal", `{"a":1,"b":"x"}`, `{"a":1,"b":"x"}`, true},
		{"extra field", `{"a":1,"b":"x"}`, `{"a":1}`, true},
		{"changed scalar", `{"a":2}`, `{"a":1}`, false},
		{"missing field", `{}`, `{"a":1}`, false},
		{"empty object absent", `{}`, `{"resources":{}}`, true},
		{"toleration added to an atomic list", `{"t":[{"op":"Exists"},{"key":"injected"}]}`, `{"t":[{"op":"Exists"}]}`, true},
		{"toleration removed", `{"t":[{"key":"injected"}]}`, `{"t":[{"op":"Exists"}]}`, false},
		{"one item cannot hold two", `{"t":[{"op":"Exists"}]}`, `{"t":[{"op":"Exists"},{"op":"Exists"}]}`, false},
		{"objects in another order", `{"c":[{"name":"b"},{"name":"a"}]}`, `{"c":[{"name":"a"},{"name":"b"}]}`, true},
		{"scalar list equal", `{"args":["x","y"]}`, `{"args":["x","y"]}`, true},
		{"scalar list reordered", `{"args":["y","x"]}`, `{"args":["x","y"]}`, false},
		{"scalar list longer", `{"args":["x","y","z"]}`, `{"args":["x","y"]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var have, want any
			if err := json.Unmarshal([]byte(tc.have), &have); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			if got := contains(have, want); got != tc.ok {
				t.Errorf("contains(%s, %s) = %v, want %v", tc.have, tc.want, got, tc.ok)
			}
		})
	}
}
