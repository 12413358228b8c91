package dirsource

import (
	"sync"

	"github.com/mirrorlet/mirrorlet/manifest/desired"
)

// publisher hands snapshots to Config.Publish from a goroutine of its
// own, latest first: while one publish runs (the desired set merges every
// pod, so each costs in proportion to the number of pods), the source
// goes on reading manifests, and the next publish carries all it read
// meanwhile. A burst of manifests is published as fast as the set can
// take snapshots, each file at once when it can, without one merge per
// file: no timer, the set's own speed sets the batches.
type publisher struct {
	publish func(desired.Snapshot)
	mu      sync.Mutex
	next    *desired.Snapshot
	wake    chan struct{} // cap 1
	stopped chan struct{}
	done    chan struct{}
}

// startPublisher runs a publisher until stop is called; stop publishes
// what is pending and returns once it is published.
func startPublisher(publish func(desired.Snapshot)) (p *publisher, stop func()) {
	p = &publisher{publish: publish, wake: make(chan struct{}, 1), stopped: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p, func() {
		close(p.stopped)
		<-p.done
	}
}

// offer makes snap the next snapshot to publish, replacing one not
// published yet.
func (p *publisher) offer(snap desired.Snapshot) {
	p.mu.Lock()
	p.next = &snap
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *publisher) run() {
	defer close(p.done)
	for {
		select {
		case <-p.wake:
			p.flush()
		case <-p.stopped:
			p.flush()
			return
		}
	}
}

func (p *publisher) flush() {
	p.mu.Lock()
	next := p.next
	p.next = nil
	p.mu.Unlock()
	if next != nil {
		p.publish(*next)
	}
}
