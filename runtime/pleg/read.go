package pleg

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// Subscribe calls fn with every change event from now on, from the relist
// loop: fn must not block. The returned function ends the subscription.
func (c *Cache) Subscribe(fn func(Event)) (cancel func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.nextSub
	c.nextSub++
	c.subscribers[id] = fn
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.subscribers, id)
	}
}

// Get returns a copy of the entry of uid (no pods when the runtime runs
// none, or the cache has not listed yet).
func (c *Cache) Get(uid types.UID) Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(uid)
}

func (c *Cache) getLocked(uid types.UID) Entry {
	e, ok := c.entries[uid]
	if !ok {
		return Entry{Refreshed: c.fullTime}
	}
	return Entry{Pods: copyPods(e.pods), Refreshed: e.refreshed}
}

// ForKey returns copies of every sandbox of the static pod key, whatever
// their UID (version).
func (c *Cache) ForKey(key types.NamespacedName) []mruntime.Pod {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []mruntime.Pod
	for uid := range c.byKey[key] {
		out = append(out, copyPods(c.entries[uid].pods)...)
	}
	return out
}

// Keys returns every static pod key the runtime runs something for.
func (c *Cache) Keys() []types.NamespacedName {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Keys(c.byKey))
}

// Listed reports whether a full relist has succeeded at least once.
func (c *Cache) Listed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.listed
}

// Mark returns the number of the latest refresh started; a refresh newer
// than the mark started after the call.
func (c *Cache) Mark() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// WaitNewer asks for a refresh of uids and waits until a refresh numbered
// above mark has covered each of them (a full relist counts for all), or
// ctx ends. It is the kubelet's GetNewerThan: a worker that acted takes a
// Mark first, so it never decides on state older than its action.
func (c *Cache) WaitNewer(ctx context.Context, mark uint64, uids ...types.UID) error {
	for _, uid := range uids {
		c.request(uid)
	}
	if len(uids) == 0 {
		c.request("")
	}
	for {
		c.mu.Lock()
		ok := c.newerLocked(mark, uids)
		done := c.done
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the runtime cache: %w", ctx.Err())
		case <-done:
		}
	}
}

func (c *Cache) newerLocked(mark uint64, uids []types.UID) bool {
	if c.full > mark {
		return true
	}
	if len(uids) == 0 {
		return false
	}
	for _, uid := range uids {
		if c.refreshed[uid] <= mark {
			return false
		}
	}
	return true
}

// ListPods returns every pod of the cache, as mruntime.Runtime.ListPods
// would (for readers such as the node API): it waits for the first relist,
// and reports the last relist's error while none has succeeded.
func (c *Cache) ListPods(ctx context.Context) ([]mruntime.Pod, error) {
	for {
		c.mu.Lock()
		listed, err, done := c.listed, c.lastErr, c.done
		if listed {
			out := make([]mruntime.Pod, 0, len(c.entries))
			for _, e := range c.entries {
				out = append(out, copyPods(e.pods)...)
			}
			c.mu.Unlock()
			return out, nil
		}
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the first runtime relist: %w", errors.Join(ctx.Err()))
		case <-done:
		}
	}
}

func copyPods(pods []mruntime.Pod) []mruntime.Pod {
	out := make([]mruntime.Pod, len(pods))
	for i, p := range pods {
		out[i] = p
		out[i].Containers = slices.Clone(p.Containers)
		if p.Annotations != nil {
			out[i].Annotations = maps.Clone(p.Annotations)
		}
	}
	return out
}
