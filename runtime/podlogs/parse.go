package podlogs

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Entry is one line a container wrote, its partial pieces joined.
type Entry struct {
	// Time is when the runtime read the line (its first piece); zero for a
	// raw line.
	Time time.Time
	// Stream is "stdout" or "stderr"; "" for a raw line.
	Stream string
	// Content is the line without its newline.
	Content []byte
	// Raw says the file's line is not in the CRI format; Content is that
	// line as it is.
	Raw bool
}

// piece is one line of a CRI log file.
type piece struct {
	Entry
	partial bool
}

// parseLine parses one line of a CRI log file, without its newline:
// "<RFC3339Nano time> <stdout|stderr> <F|P>[:more tags] <content>".
// Content aliases line.
func parseLine(line []byte) (piece, error) {
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return piece{}, errors.New("no stream after the timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return piece{}, fmt.Errorf("timestamp: %w", err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok || string(stream) != "stdout" && string(stream) != "stderr" {
		return piece{}, fmt.Errorf("stream %q is neither stdout nor stderr", stream)
	}
	// An empty line's content is empty; a writer may leave out its space.
	tags, content, _ := bytes.Cut(rest, []byte{' '})
	tag, _, _ := bytes.Cut(tags, []byte{':'})
	if string(tag) != "F" && string(tag) != "P" {
		return piece{}, fmt.Errorf("tag %q is neither F nor P", tags)
	}
	return piece{Entry: Entry{Time: t, Stream: string(stream), Content: content}, partial: string(tag) == "P"}, nil
}

// decoder turns the lines of a CRI log file into entries, joining the
// pieces of partial lines, per stream.
type decoder struct {
	emit    func(Entry)
	pending map[string]*Entry
}

func newDecoder(emit func(Entry)) *decoder {
	return &decoder{emit: emit, pending: map[string]*Entry{}}
}

// line takes one line of the file (without its newline; it may be reused
// once line returns).
func (d *decoder) line(b []byte) {
	p, err := parseLine(b)
	if err != nil {
		// Not written by a CRI runtime (or cut short): show it as it is,
		// after any line it interrupts.
		d.flush()
		d.emit(Entry{Content: bytes.Clone(b), Raw: true})
		return
	}
	if e := d.pending[p.Stream]; e != nil {
		e.Content = append(e.Content, p.Content...)
	} else {
		e = &Entry{Time: p.Time, Stream: p.Stream, Content: bytes.Clone(p.Content)}
		d.pending[p.Stream] = e
	}
	if !p.partial {
		e := d.pending[p.Stream]
		delete(d.pending, p.Stream)
		d.emit(*e)
	}
}

// flush emits the lines whose last piece never came, as they are so far.
func (d *decoder) flush() {
	for _, stream := range []string{"stdout", "stderr"} {
		if e := d.pending[stream]; e != nil {
			delete(d.pending, stream)
			d.emit(*e)
		}
	}
}
