package desired

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// filePod is a static pod from file origin, with an optional host port.
func filePod(t *testing.T, origin, name, image string, hostPort int) *manifest.StaticPod {
	t.Helper()
	data := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n  containers:\n  - name: c\n    image: " + image + "\n"
	if hostPort != 0 {
		data += "    ports: [{containerPort: 80, hostPort: " + strconv.Itoa(hostPort) + "}]\n"
	}
	sp, err := manifest.Load([]byte(data), manifest.Identity{NodeName: "n1", Source: manifest.SourceFile, Origin: origin, Seen: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func files(pods ...*manifest.StaticPod) Snapshot { return Snapshot{Pods: pods} }

// refusal returns the one problem not tied to a running pod, failing the
// test unless it names both manifests.
func refusal(t *testing.T, s *Set, refused, holder string) {
	t.Helper()
	for _, p := range s.AllProblems() {
		if p.Key == (types.NamespacedName{}) && strings.Contains(p.Err.Error(), refused) && strings.Contains(p.Err.Error(), holder) {
			return
		}
	}
	t.Errorf("no problem naming %s (refused) and %s (holder): %v", refused, holder, s.AllProblems())
}

func TestNewPodsTieBreakBySortOrder(t *testing.T) {
	s := New(manifest.SourceFile)
	a, b := filePod(t, "/m/a.yaml", "web", "i:1", 0), filePod(t, "/m/b.yaml", "web", "i:2", 0)
	s.Update(manifest.SourceFile, files(a, b))
	if got, _ := s.Get(a.Key()); got != a {
		t.Errorf("both new: a.yaml sorts first and must win")
	}
	refusal(t, s, "/m/b.yaml", "/m/a.yaml")
}

func TestRunningHolderWinsAgainstNewFile(t *testing.T) {
	s := New(manifest.SourceFile)
	z := filePod(t, "/m/z.yaml", "web", "i:1", 8080)
	s.Update(manifest.SourceFile, files(z))

	// A new file sorting first takes the name: refused, z keeps running.
	a := filePod(t, "/m/a.yaml", "web", "i:2", 0)
	s.Update(manifest.SourceFile, files(a, z))
	if got, _ := s.Get(z.Key()); got != z {
		t.Fatalf("a new file displaced the running pod")
	}
	refusal(t, s, "/m/a.yaml", "/m/z.yaml")

	// A new file claiming z's host port: refused too.
	other := filePod(t, "/m/0.yaml", "other", "i:1", 8080)
	s.Update(manifest.SourceFile, files(other, z))
	if _, ok := s.Get(other.Key()); ok {
		t.Errorf("a new pod took a running pod's host port")
	}
	refusal(t, s, "/m/0.yaml", "/m/z.yaml")

	// z is removed: the newcomer may take the port now.
	s.Update(manifest.SourceFile, files(other))
	if _, ok := s.Get(other.Key()); !ok {
		t.Errorf("the port is free, yet the pod is still refused")
	}
}

// An edit of a running pod that would clash keeps its old version running
// with the problem on its mirror, as an invalid edit does.
func TestHolderEditThatClashesKeepsOldVersion(t *testing.T) {
	s := New(manifest.SourceFile)
	web := filePod(t, "/m/web.yaml", "web", "i:1", 8080)
	api := filePod(t, "/m/api.yaml", "api", "i:1", 9090)
	s.Update(manifest.SourceFile, files(api, web))
	webEdit := filePod(t, "/m/web.yaml", "web", "i:2", 9090)
	s.Update(manifest.SourceFile, files(api, webEdit))
	if got, _ := s.Get(web.Key()); got != web {
		t.Fatalf("the clashing edit replaced web (running %v)", got)
	}
	if got, _ := s.Get(api.Key()); got != api {
		t.Fatalf("api lost its port to an edit of web")
	}
	ps := s.Problems(web.Key())
	if len(ps) != 1 || !strings.Contains(ps[0].Err.Error(), "9090") {
		t.Errorf("problems on web %v, want the port clash", ps)
	}
}

// After a restart, the runtime's running version holds its name against a
// file added while mirrorlet was stopped, even one that sorts first.
func TestRunningAtStartHoldsName(t *testing.T) {
	z := filePod(t, "/m/z.yaml", "web", "i:1", 0)
	a := filePod(t, "/m/a.yaml", "web", "i:2", 0)
	s := New(manifest.SourceFile)
	s.SetRunning([]string{z.Hash})
	s.Update(manifest.SourceFile, files(a, z))
	if got, _ := s.Get(z.Key()); got != z {
		t.Fatalf("the file added while stopped displaced the running pod")
	}
	refusal(t, s, "/m/a.yaml", "/m/z.yaml")
}

// Before every source has published, merges are provisional: the source
// named first still wins a tie at start, whichever publishes first.
func TestSourcePriorityAtStart(t *testing.T) {
	s := New(manifest.SourceFile, manifest.SourceHTTP)
	httpWeb := staticPod(t, "web", manifest.SourceHTTP, "i:2")
	fileWeb := staticPod(t, "web", manifest.SourceFile, "i:1")
	s.Update(manifest.SourceHTTP, files(httpWeb))
	s.Update(manifest.SourceFile, files(fileWeb))
	if got, _ := s.Get(fileWeb.Key()); got != fileWeb {
		t.Errorf("at start the directory must win a tie with the URL")
	}
	// Once running, the file's pod holds the name against a URL change.
	httpWeb2 := staticPod(t, "web", manifest.SourceHTTP, "i:3")
	s.Update(manifest.SourceHTTP, files(httpWeb2))
	if got, _ := s.Get(fileWeb.Key()); got != fileWeb {
		t.Errorf("a URL edit displaced the running file pod")
	}
}
