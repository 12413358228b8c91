package manifest

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

const validPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {role: myrole}
spec:
  containers:
  - name: web
    image: nginx:1.27
`

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, in, wantErr string
	}{
		{"yaml", validPod, ""},
		{"json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"c","image":"i"}]}}`, ""},
		{"leading document marker and comments", "# hi\n---\n" + validPod, ""},
		{"empty", "", "manifest is empty"},
		{"only comments", "# nothing\n", "manifest is empty"},
		{"binary junk", "\x00\x01\x02\xff", "YAML"},
		{"scalar", "hello", "not a YAML or JSON object"},
		{"truncated", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [web\n", "YAML"},
		{"two documents", validPod + "---\n" + validPod, "2 YAML documents"},
		{"deployment", strings.Replace(validPod, "kind: Pod", "kind: Deployment", 1), `kind: Invalid value: "Deployment"`},
		{"pod list", "apiVersion: v1\nkind: PodList\nitems: []\n", "not a list"},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", "kind: Required"},
		{"wrong apiVersion", strings.Replace(validPod, "apiVersion: v1", "apiVersion: apps/v1", 1), `apiVersion: Invalid value: "apps/v1"`},
		{"unknown field", strings.Replace(validPod, "image:", "imagee:", 1), `unknown field "spec.containers[0].imagee"`},
		{"duplicate field", strings.Replace(validPod, "  name: web\n", "  name: web\n  name: again\n", 1), "already set"},
		{"too large", validPod + "#" + strings.Repeat("x", MaxManifestSize), "larger than the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod, err := Decode([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil || pod == nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Decode error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func load(t *testing.T, data, node, origin string) *StaticPod {
	t.Helper()
	sp, err := Load([]byte(data), Identity{NodeName: node, Source: SourceFile, Origin: origin, Seen: time.Unix(1, 0)})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return sp
}

func TestIdentityAndDefaults(t *testing.T) {
	sp := load(t, validPod, "Node-1", "/etc/m/web.yaml")
	p := sp.Pod
	if p.Name != "web-node-1" || p.Namespace != "default" || p.Spec.NodeName != "node-1" {
		t.Errorf("identity %s/%s on %q", p.Namespace, p.Name, p.Spec.NodeName)
	}
	if string(p.UID) != sp.Hash || p.Annotations[AnnotationHash] != sp.Hash || p.Annotations[AnnotationSource] != "file" {
		t.Errorf("UID %s, annotations %v, hash %s", p.UID, p.Annotations, sp.Hash)
	}
	if p.Spec.RestartPolicy != corev1.RestartPolicyAlways || *p.Spec.TerminationGracePeriodSeconds != 30 ||
		p.Spec.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("defaults not applied: %+v", p.Spec)
	}
	last := p.Spec.Tolerations[len(p.Spec.Tolerations)-1]
	if last.Operator != corev1.TolerationOpExists || last.Effect != corev1.TaintEffectNoExecute {
		t.Errorf("toleration %+v", last)
	}
}

func TestSpecHash(t *testing.T) {
	base := load(t, validPod, "n1", "/m/web.yaml").Hash
	probed := load(t, withProbe, "n1", "/m/web.yaml").Hash
	for _, tc := range []struct {
		name, data, node, origin string
		same                     bool
	}{
		{"same input", validPod, "n1", "/m/web.yaml", true},
		{"label edit", strings.Replace(validPod, "role: myrole", "role: other", 1), "n1", "/m/web.yaml", true},
		{"annotation added", strings.Replace(validPod, "  labels:", "  annotations: {a: b}\n  labels:", 1), "n1", "/m/web.yaml", true},
		{"default spelled out", strings.Replace(validPod, "spec:\n", "spec:\n  restartPolicy: Always\n", 1), "n1", "/m/web.yaml", true},
		{"probe defaults spelled out", strings.Replace(withProbe, "readinessProbe: {httpGet: {port: 80}}",
			"readinessProbe: {httpGet: {port: 80, path: /, scheme: HTTP}, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3}", 1),
			"n1", "/m/web.yaml", true},
		{"probe period changed", strings.Replace(withProbe, "readinessProbe: {httpGet: {port: 80}}",
			"readinessProbe: {httpGet: {port: 80}, periodSeconds: 5}", 1), "n1", "/m/web.yaml", false},
		{"image change", strings.Replace(validPod, "nginx:1.27", "nginx:1.28", 1), "n1", "/m/web.yaml", false},
		{"other node", validPod, "n2", "/m/web.yaml", false},
		{"other file", validPod, "n1", "/m/web2.yaml", false},
		{"env var reading a label added", withEnvLabel, "n1", "/m/web.yaml", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, want := load(t, tc.data, tc.node, tc.origin).Hash, base
			if strings.Contains(tc.data, "readinessProbe") {
				want = probed
			}
			if (got == want) != tc.same {
				t.Errorf("hash %s vs %s: same=%v, want %v", got, want, got == want, tc.same)
			}
		})
	}
	// A label that an env var reads is part of what the container runs
	// with: editing it restarts; other metadata edits still do not.
	withEnv := load(t, withEnvLabel, "n1", "/m/web.yaml").Hash
	for _, tc := range []struct {
		name, data string
		same       bool
	}{
		{"label read by env edited", strings.Replace(withEnvLabel, "role: myrole", "role: other", 1), false},
		{"other label added", strings.Replace(withEnvLabel, "role: myrole", "role: myrole, tier: web", 1), true},
		{"annotation added", strings.Replace(withEnvLabel, "  labels:", "  annotations: {a: b}\n  labels:", 1), true},
	} {
		t.Run("env/"+tc.name, func(t *testing.T) {
			got := load(t, tc.data, "n1", "/m/web.yaml").Hash
			if (got == withEnv) != tc.same {
				t.Errorf("hash %s vs %s: same=%v, want %v", got, withEnv, got == withEnv, tc.same)
			}
		})
	}
}

// withProbe is validPod with a readiness probe that leaves every default
// out.
var withProbe = strings.Replace(validPod, "    image: nginx:1.27\n",
	"    image: nginx:1.27\n    readinessProbe: {httpGet: {port: 80}}\n", 1)

// withEnvLabel is validPod with an env var that reads label "role".
var withEnvLabel = strings.Replace(validPod, "    image: nginx:1.27\n",
	"    image: nginx:1.27\n    env: [{name: ROLE, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['role']\"}}}]\n", 1)

func TestLoadErrorsNameFileAndField(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []string
	}{
		{"no name", strings.Replace(validPod, "  name: web\n", "", 1), []string{"/m/x.yaml: metadata.name: Required"}},
		{"duplicate containers", validPod + "  - name: web\n    image: x\n", []string{"/m/x.yaml: spec.containers[1].name: Duplicate value"}},
		{"no image", strings.Replace(validPod, "    image: nginx:1.27\n", "", 1), []string{"spec.containers[0].image: Required"}},
		{"name too long with node suffix", strings.Replace(validPod, "name: web\n  labels", "name: "+strings.Repeat("a", 251)+"\n  labels", 1), []string{"metadata.name", "<name>-<node>"}},
		{"bad port", strings.Replace(validPod, "image: nginx:1.27\n", "image: nginx:1.27\n    ports: [{containerPort: 70000}]\n", 1), []string{"spec.containers[0].ports[0].containerPort"}},
		{"decode error", "kind: Deployment\napiVersion: apps/v1\n", []string{"/m/x.yaml: kind: Invalid value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.data), Identity{NodeName: "n1", Source: SourceFile, Origin: "/m/x.yaml"})
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("Load error %v, want a *manifest.Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(validPod))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"i"}]}}`))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sp, err := Load(data, Identity{NodeName: "n1", Source: SourceFile, Origin: "/fuzz.yaml"})
		if err == nil && (sp == nil || sp.Hash == "") {
			t.Fatalf("no error but no static pod")
		}
	})
}

func FuzzDecodePods(f *testing.F) {
	f.Add([]byte(validPod))
	f.Add([]byte("apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: a}\n  spec: {containers: [{name: c, image: i}]}\n"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pods, err := DecodePods(data)
		if err == nil {
			for _, p := range pods {
				if p == nil {
					t.Fatal("nil pod without an error")
				}
			}
		}
	})
}
