package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/revisions"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// PodReport is one static pod as `mirrorlet status` shows it.
type PodReport struct {
	Name     string   `json:"name"`
	Source   string   `json:"source"`
	Origin   string   `json:"origin"`
	Hash     string   `json:"hash"`
	Runtime  string   `json:"runtime"`
	Mirror   string   `json:"mirror"`
	Problems []string `json:"problems,omitempty"`
	// Revision is the number of the revision that runs ("" without a
	// revision store).
	Revision string `json:"revision,omitempty"`
	// Pinned says why an earlier revision runs in place of the
	// manifest's; empty when the manifest's runs.
	Pinned string `json:"pinned,omitempty"`
}

// StatusReport is what /status serves.
type StatusReport struct {
	Node string      `json:"node"`
	Pods []PodReport `json:"pods"`
	// Problems are manifests that run no pod.
	Problems []string `json:"problems,omitempty"`
}

// report builds the status report from local state only.
func (a *agent) report() StatusReport {
	rep := StatusReport{Node: a.opts.NodeName}
	for _, sp := range a.desired.List() {
		pr := PodReport{Name: sp.Key().String(), Source: sp.Source, Origin: sp.Origin, Hash: sp.Hash,
			Runtime: a.runtimeSummary(sp), Mirror: a.mirrorSummary(sp)}
		pr.Revision, pr.Pinned = revisionSummary(sp)
		for _, p := range a.desired.Problems(sp.Key()) {
			pr.Problems = append(pr.Problems, p.Err.Error())
		}
		rep.Pods = append(rep.Pods, pr)
	}
	sort.Slice(rep.Pods, func(i, j int) bool { return rep.Pods[i].Name < rep.Pods[j].Name })
	for _, p := range a.desired.AllProblems() {
		if p.Key.Name == "" {
			rep.Problems = append(rep.Problems, p.Err.Error())
		}
	}
	sort.Strings(rep.Problems)
	return rep
}

// revisionSummary returns the running revision and why it is pinned.
func revisionSummary(sp *manifest.StaticPod) (revision, pinned string) {
	revision = sp.Pod.Annotations[revisions.AnnotationRevision]
	if reason := sp.Pod.Annotations[revisions.AnnotationPinnedReason]; reason != "" {
		pinned = reason + ": " + sp.Pod.Annotations[revisions.AnnotationPinnedMessage]
	}
	return revision, pinned
}

func (a *agent) runtimeSummary(sp *manifest.StaticPod) string {
	st, ok := a.states.Get(sp.Key())
	switch {
	case !ok || st.UID != sp.Pod.UID:
		return "starting"
	case st.Pod == nil:
		return "not running: " + st.Message
	}
	running := 0
	for _, c := range sp.Pod.Spec.Containers {
		if l := st.Pod.Latest(c.Name); l != nil && l.State == mruntime.ContainerRunning {
			running++
		}
	}
	s := fmt.Sprintf("%d/%d running", running, len(sp.Pod.Spec.Containers))
	var waiting []string
	for name, w := range st.Waiting {
		waiting = append(waiting, name+": "+w.Reason)
	}
	sort.Strings(waiting)
	if len(waiting) > 0 {
		s += " (" + strings.Join(waiting, ", ") + ")"
	}
	return s
}

func (a *agent) mirrorSummary(sp *manifest.StaticPod) string {
	ms, ok := a.mirrors.Get(sp.Key())
	switch {
	case !ok:
		return "pending"
	case ms.NameTaken:
		return "name taken: " + ms.Error
	case ms.Rejected:
		return "refused by the API server: " + ms.Error
	case ms.Error != "":
		return "error: " + ms.Error
	case ms.UID == "":
		return "pending"
	}
	return "ok (uid " + string(ms.UID) + ")"
}

func (a *agent) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(a.report())
}
