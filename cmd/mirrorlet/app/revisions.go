package app

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"golang.org/x/sync/errgroup"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/mirrorlet/mirrorlet/controllers/rollback"
	"github.com/mirrorlet/mirrorlet/manifest/revisions"
)

var registerRollbackMetrics sync.Once

// RevisionsDir is the revision store under a root directory.
func RevisionsDir(rootDir string) string { return filepath.Join(rootDir, "revisions") }

// setupRevisions opens the revision store under the root directory, makes
// it choose the version of every pod the desired set runs, and starts the
// rollback controller. Without a root directory (tests) there are no
// revisions. Call it before the sources start.
func (a *agent) setupRevisions(ctx context.Context, g *errgroup.Group) error {
	if a.opts.RootDir == "" {
		return nil
	}
	store, err := revisions.Open(revisions.Config{
		Dir: RevisionsDir(a.opts.RootDir), Limit: a.opts.RevisionHistoryLimit, Log: a.opts.Log.WithName("revisions"),
	})
	if err != nil {
		return fmt.Errorf("opening the revision store: %w", err)
	}
	a.desired.SetResolver(store)
	g.Go(func() error { return store.Run(ctx) })
	registerRollbackMetrics.Do(func() {
		for _, c := range rollback.Collectors() {
			metrics.Registry.MustRegister(c)
		}
	})
	c, err := rollback.New(rollback.Config{
		Desired: a.desired, States: a.states, Revisions: store, Events: a.events,
		Log: a.opts.Log.WithName("rollback"),
	})
	if err != nil {
		return fmt.Errorf("setting up the rollback controller: %w", err)
	}
	g.Go(func() error { return c.Run(ctx) })
	return nil
}
