package podlogs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// timeFormat is how Timestamps prints times: the kubelet's fixed-width
// RFC 3339 with nanoseconds.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// DefaultInterval is how often Follow looks for more lines.
const DefaultInterval = 200 * time.Millisecond

// Options say what Print writes.
type Options struct {
	// Previous prints the attempt before the latest one (and never follows).
	Previous bool
	// Timestamps prefixes each line with its time.
	Timestamps bool
	// Tail prints only the last Tail lines of the file (when following: of
	// what it holds at the start); negative prints all.
	Tail int
	// Follow keeps printing lines as they are written, moving on to the
	// next attempt when the container restarts.
	Follow bool
	// Interval is how often Follow looks for more; 0: DefaultInterval.
	Interval time.Duration
	// Since, when set, skips lines written before it (lines without a
	// time are kept). Tail counts only the lines kept.
	Since time.Time
	// LimitBytes, when positive, ends the output (and following) once that
	// many bytes were written; the last line may be cut short.
	LimitBytes int64
	// Stream, when "stdout" or "stderr", prints that stream only (and no
	// line that is not in the CRI format).
	Stream string
}

// Print writes c's log to w as `kubectl logs` does: the content of each
// line (with Timestamps its time first), of the latest attempt or, with
// Previous, the one before. With Follow it returns nil when ctx ends or the
// container's logs are removed (the pod was removed).
func Print(ctx context.Context, w io.Writer, c *Container, o Options) error {
	a, err := c.attempt(o.Previous)
	if err != nil {
		return err
	}
	fr, err := openFile(a.Path)
	if err != nil {
		return err
	}
	f := &follower{c: c, p: newPrinter(w, o), fr: fr, attempt: a}
	defer f.close()
	if err := fr.readLines(f.p.dec.line); err != nil {
		return err
	}
	if !o.Follow || o.Previous {
		fr.finish(f.p.dec.line)
		f.p.dec.flush()
		f.p.endTail()
		return f.p.flush()
	}
	f.p.endTail()
	if f.p.full() {
		return f.p.flush()
	}
	return f.run(ctx, o.Interval)
}

// printer writes entries, keeping the last Tail ones until endTail.
type printer struct {
	w          *bufio.Writer
	timestamps bool
	tail       int
	since      time.Time
	stream     string
	left       int64 // bytes still allowed; negative: no limit
	kept       []Entry
	dec        *decoder
	err        error
}

func newPrinter(w io.Writer, o Options) *printer {
	p := &printer{w: bufio.NewWriter(w), timestamps: o.Timestamps, tail: o.Tail, since: o.Since, stream: o.Stream, left: -1}
	if o.LimitBytes > 0 {
		p.left = o.LimitBytes
	}
	p.dec = newDecoder(p.entry)
	return p
}

// full reports whether LimitBytes were written.
func (p *printer) full() bool { return p.left == 0 }

func (p *printer) entry(e Entry) {
	if !p.since.IsZero() && !e.Raw && e.Time.Before(p.since) || p.stream != "" && e.Stream != p.stream {
		return
	}
	if p.tail < 0 {
		p.write(e)
		return
	}
	p.kept = append(p.kept, e)
	if len(p.kept) > p.tail {
		p.kept = p.kept[1:]
	}
}

// endTail writes the entries kept for Tail; later ones are written at once.
func (p *printer) endTail() {
	for _, e := range p.kept {
		p.write(e)
	}
	p.kept, p.tail = nil, -1
}

func (p *printer) write(e Entry) {
	if p.err != nil || p.full() {
		return
	}
	if p.timestamps && !e.Raw {
		p.put([]byte(e.Time.Format(timeFormat) + " "))
	}
	p.put(e.Content)
	p.put([]byte{'\n'})
}

// put writes b, cut short at the byte limit.
func (p *printer) put(b []byte) {
	if p.left >= 0 {
		b = b[:min(int64(len(b)), p.left)]
		p.left -= int64(len(b))
	}
	if _, err := p.w.Write(b); err != nil && p.err == nil {
		p.err = err
	}
}

func (p *printer) flush() error {
	if p.err != nil {
		return fmt.Errorf("writing logs: %w", p.err)
	}
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("writing logs: %w", err)
	}
	return nil
}

// follower prints what is appended to the latest attempt's file.
type follower struct {
	c       *Container
	p       *printer
	fr      *fileReader // nil between attempts when the next cannot be opened yet
	attempt Attempt
}

func (f *follower) close() {
	if f.fr != nil {
		f.fr.close()
	}
}

func (f *follower) run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := f.p.flush(); err != nil || f.p.full() {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		err := f.step()
		if errors.Is(err, errGone) {
			if f.fr != nil {
				f.fr.finish(f.p.dec.line)
			}
			f.p.dec.flush()
			return f.p.flush()
		}
		if err != nil {
			return err
		}
	}
}

// step reads what was appended, then moves to a newer attempt if the
// container restarted, or starts over if the file was truncated or
// replaced.
func (f *follower) step() error {
	if f.fr != nil {
		if err := f.fr.readLines(f.p.dec.line); err != nil {
			return err
		}
	}
	latest, err := f.c.latest()
	if err != nil {
		return err
	}
	if latest != nil && (f.fr == nil || latest.N > f.attempt.N) {
		return f.switchTo(*latest)
	}
	if f.fr == nil {
		return nil
	}
	return f.fr.reopenIfReplaced(f.p.dec.line)
}

// switchTo finishes the current attempt's file, then prints a from its
// start.
func (f *follower) switchTo(a Attempt) error {
	if f.fr != nil {
		// Lines written between the last read and the restart.
		if err := f.fr.readLines(f.p.dec.line); err != nil {
			return err
		}
		f.fr.finish(f.p.dec.line)
		f.p.dec.flush()
		f.fr.close()
		f.fr = nil
	}
	fr, err := openFile(a.Path)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed already: the next step looks again.
		return nil
	}
	if err != nil {
		return err
	}
	f.fr, f.attempt = fr, a
	return f.fr.readLines(f.p.dec.line)
}
