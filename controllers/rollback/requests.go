package rollback

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest/revisions"
)

// serveRequests applies every pending mirrorlet rollback request and
// answers it.
func (c *Controller) serveRequests() {
	dir := c.cfg.Revisions.Dir()
	reqs, err := revisions.TakeRequests(dir)
	if err != nil {
		c.cfg.Log.Error(err, "Reading rollback requests failed")
	}
	for _, r := range reqs {
		res := c.apply(r)
		ns, name, _ := strings.Cut(r.Key, "/")
		if err := revisions.WriteResult(dir, types.NamespacedName{Namespace: ns, Name: name}, res); err != nil {
			c.cfg.Log.Error(err, "Answering a rollback request failed", "pod", r.Key)
		}
	}
}

func (c *Controller) apply(r revisions.Request) revisions.Result {
	ns, name, ok := strings.Cut(r.Key, "/")
	if !ok {
		return revisions.Result{Key: r.Key, Error: "the pod must be given as <namespace>/<name>"}
	}
	key := types.NamespacedName{Namespace: ns, Name: name}
	rev, err := c.cfg.Revisions.Pin(key, r.Revision)
	if err != nil {
		c.cfg.Log.Error(err, "Rollback request refused", "pod", key, "revision", r.Revision)
		return revisions.Result{Key: r.Key, Error: err.Error()}
	}
	c.cfg.Log.Info("Rollback requested; revision pinned", "pod", key, "revision", rev.Number)
	rollbacks.WithLabelValues(key.String(), revisions.ReasonManual).Inc()
	c.cfg.Desired.Refresh()
	c.cfg.Events.Event(key, "", corev1.EventTypeNormal, "PinnedRevision",
		fmt.Sprintf("mirrorlet rollback: revision %d runs until the manifest changes", rev.Number))
	return revisions.Result{Key: r.Key, Revision: rev.Number}
}
