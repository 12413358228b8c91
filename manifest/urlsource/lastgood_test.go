package urlsource

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mirrorlet/mirrorlet/manifest/lastgood"
)

func openStore(t *testing.T, dir string) *lastgood.Store {
	t.Helper()
	s, err := lastgood.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A URL that cannot be used when mirrorlet starts runs the pods of the
// last good fetch, with their hashes (so what runs is adopted, not
// restarted) and with the failure reported on each.
func TestURLUnusableAtStartRunsLastGoodPods(t *testing.T) {
	srv := &server{status: 200, body: podList}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	store := t.TempDir()
	ctx := context.Background()
	s, rec := newSource(t, Config{URL: ts.URL, LastGood: openStore(t, store)})
	s.Fetch(ctx)
	good := rec.last(t)

	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"server error", http.StatusInternalServerError, "oops", "500"},
		{"garbage body", http.StatusOK, "{{{", "YAML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.set(tc.status, tc.body)
			s, rec := newSource(t, Config{URL: ts.URL, LastGood: openStore(t, store)})
			s.Fetch(ctx)
			snap := rec.last(t)
			if names(snap) != names(good) {
				t.Fatalf("pods %s, want the last good %s", names(snap), names(good))
			}
			for i, sp := range snap.Pods {
				if sp.Hash != good.Pods[i].Hash {
					t.Errorf("pod %s hash %s, want %s (the running version)", sp.Pod.Name, sp.Hash, good.Pods[i].Hash)
				}
			}
			if len(snap.Problems) != 2 || !strings.Contains(snap.Problems[0].Err.Error(), tc.want) {
				t.Errorf("problems %v, want the failure (%q) on each pod", snap.Problems, tc.want)
			}
			// The URL recovers with one pod fewer: b stops, and is forgotten.
			srv.set(200, pod("a", "i:1"))
			s.Fetch(ctx)
			if got := names(rec.last(t)); got != "a-n1=i:1/http" {
				t.Fatalf("after recovery: %s", got)
			}
			srv.set(200, podList)
			s.Fetch(ctx)
		})
	}

	// Unreachable at start after the body dropped b: only a comes back.
	srv.set(200, pod("a", "i:1"))
	s, _ = newSource(t, Config{URL: ts.URL, LastGood: openStore(t, store)})
	s.Fetch(ctx)
	ts.Close()
	s, rec = newSource(t, Config{URL: ts.URL, LastGood: openStore(t, store)})
	s.Fetch(ctx)
	if got := names(rec.last(t)); got != "a-n1=i:1/http" {
		t.Errorf("unreachable at start: pods %s, want only a", got)
	}
}

// A pod of the body that turns invalid while mirrorlet is stopped keeps
// its last good version after the restart; the other pods follow the body.
func TestInvalidURLPodAfterRestartKeepsLastGood(t *testing.T) {
	srv := &server{status: 200, body: podList}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	store := t.TempDir()
	ctx := context.Background()
	s, _ := newSource(t, Config{URL: ts.URL, LastGood: openStore(t, store)})
	s.Fetch(ctx)

	srv.set(200, strings.Replace(podList, `{name: c, image: "i:1"}]}`, `{name: c, image: "i:1", ports: [{containerPort: 70000}]}]}`, 1))
	s, rec := newSource(t, Config{URL: ts.URL, LastGood: openStore(t, store)})
	s.Fetch(ctx)
	snap := rec.last(t)
	if got := names(snap); got != "a-n1=i:1/http,b-n1=i:1/http" {
		t.Fatalf("pods %s, want a (last good) and b", got)
	}
	if len(snap.Problems) != 1 || snap.Problems[0].Key.Name != "a-n1" {
		t.Errorf("problems %+v, want one on a", snap.Problems)
	}
}
