package runtime

import (
	"maps"
	"slices"
	"time"
)

// Equal reports whether p and q hold the same state: every field, the
// containers in the same order (callers that compare listings sort them
// first). Times are compared as instants (time.Time.Equal). It is what
// the runtime cache compares on every relist, so it allocates nothing.
func (p *Pod) Equal(q *Pod) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.UID == q.UID && p.Namespace == q.Namespace && p.Name == q.Name && p.SandboxID == q.SandboxID &&
		p.Ready == q.Ready && p.IP == q.IP && p.CreatedAt.Equal(q.CreatedAt) && sameGrace(p.Grace, q.Grace) &&
		(p.Annotations == nil) == (q.Annotations == nil) && maps.Equal(p.Annotations, q.Annotations) &&
		sameContainers(p.Containers, q.Containers)
}

func sameGrace(a, b *time.Duration) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func sameContainers(a, b []Container) bool {
	return slices.EqualFunc(a, b, func(x, y Container) bool { return x.Equal(&y) })
}

// Equal reports whether c and d are the same attempt in the same state:
// every field, times compared as instants.
func (c *Container) Equal(d *Container) bool {
	return c.ID == d.ID && c.Name == d.Name && c.Attempt == d.Attempt && c.Init == d.Init && c.State == d.State &&
		c.CreatedAt.Equal(d.CreatedAt) && c.StartedAt.Equal(d.StartedAt) && c.FinishedAt.Equal(d.FinishedAt) &&
		c.ExitCode == d.ExitCode && c.Reason == d.Reason && c.Message == d.Message &&
		c.Image == d.Image && c.ImageRef == d.ImageRef
}

// PodsEqual reports whether a and b hold equal pods in the same order.
func PodsEqual(a, b []Pod) bool {
	return slices.EqualFunc(a, b, func(x, y Pod) bool { return x.Equal(&y) })
}
