package logdir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultPeriod is how often a Checker looks when Config.Period is 0.
const DefaultPeriod = 5 * time.Second

// Config configures a Checker.
type Config struct {
	// Dir is the pod log directory. Required.
	Dir string
	// Period between checks; DefaultPeriod when 0.
	Period time.Duration
}

// Checker checks a log directory every period.
type Checker struct {
	cfg     Config
	mu      sync.Mutex
	problem error
	checked bool
	subs    map[int]func()
	nextSub int
}

// New validates and defaults cfg.
func New(cfg Config) (*Checker, error) {
	if cfg.Dir == "" {
		return nil, errors.New("log directory is required")
	}
	if cfg.Period <= 0 {
		cfg.Period = DefaultPeriod
	}
	return &Checker{cfg: cfg, subs: map[int]func(){}}, nil
}

// Run checks at once, then every period until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Period)
	defer t.Stop()
	for {
		c.set(Check(c.cfg.Dir))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Problem is nil while the directory takes logs, else why it does not. It
// is nil before the first check. Safe for concurrent use.
func (c *Checker) Problem() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.problem
}

// Subscribe calls f (which must not block) after every change of Problem,
// until cancel is called.
func (c *Checker) Subscribe(f func()) (cancel func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.nextSub
	c.nextSub++
	c.subs[id] = f
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.subs, id)
	}
}

func (c *Checker) set(problem error) {
	c.mu.Lock()
	changed := !c.checked || errString(problem) != errString(c.problem)
	c.problem, c.checked = problem, true
	var subs []func()
	if changed {
		for _, f := range c.subs {
			subs = append(subs, f)
		}
	}
	c.mu.Unlock()
	for _, f := range subs {
		f()
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Check tells whether dir takes logs: it has free blocks and inodes, and
// a one-byte file can be written, synced and removed there.
func Check(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("pod log directory %s: %w", dir, err)
	}
	if st.Bavail == 0 || (st.Files > 0 && st.Ffree == 0) {
		return fmt.Errorf("pod log directory %s: no space left (%d blocks, %d inodes free): container logs are being lost", dir, st.Bavail, st.Ffree)
	}
	if err := probe(dir); err != nil {
		return fmt.Errorf("pod log directory %s not writable: container logs are being lost: %w", dir, err)
	}
	return nil
}

func probe(dir string) error {
	f, err := os.CreateTemp(dir, ".mirrorlet-probe-")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(f.Name()) }()
	_, err = f.Write([]byte{'\n'})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
