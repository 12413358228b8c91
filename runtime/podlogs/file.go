package podlogs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// fileReader reads the lines of a file that may still be written: a last
// line without its newline is kept until the newline comes.
type fileReader struct {
	path    string
	f       *os.File
	r       *bufio.Reader
	offset  int64 // bytes read from f
	pending []byte
}

func openFile(path string) (*fileReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	return &fileReader{path: path, f: f, r: bufio.NewReaderSize(f, 64*1024)}, nil
}

func (fr *fileReader) close() { _ = fr.f.Close() }

// readLines calls fn with each complete line (without its newline) up to
// the end of the file. fn must not keep the slice.
func (fr *fileReader) readLines(fn func([]byte)) error {
	for {
		chunk, err := fr.r.ReadSlice('\n')
		fr.offset += int64(len(chunk))
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			fr.pending = append(fr.pending, chunk...)
			continue
		case errors.Is(err, io.EOF):
			fr.pending = append(fr.pending, chunk...)
			return nil
		case err != nil:
			return fmt.Errorf("reading log %s: %w", fr.path, err)
		}
		line := chunk[:len(chunk)-1]
		if len(fr.pending) > 0 {
			fr.pending = append(fr.pending, line...)
			line = fr.pending
		}
		fn(line)
		fr.pending = fr.pending[:0]
	}
}

// finish calls fn with a last line that never got its newline.
func (fr *fileReader) finish(fn func([]byte)) {
	if len(fr.pending) > 0 {
		fn(fr.pending)
		fr.pending = fr.pending[:0]
	}
}

// reopenIfReplaced starts over at the beginning when the file was
// truncated, or opens the new file at the same path when it was replaced
// (rotated), after the old one's last line.
func (fr *fileReader) reopenIfReplaced(fn func([]byte)) error {
	cur, err := fr.f.Stat()
	if err != nil {
		return fmt.Errorf("reading log %s: %w", fr.path, err)
	}
	onDisk, err := os.Stat(fr.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Removed: a newer attempt or the pod's removal shows next.
		return nil
	case err != nil:
		return fmt.Errorf("reading log %s: %w", fr.path, err)
	case !os.SameFile(cur, onDisk):
		f, err := os.Open(fr.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since: the next step looks again
		}
		if err != nil {
			return fmt.Errorf("opening log: %w", err)
		}
		// Lines written to the old file since the last read come first.
		if err := fr.readLines(fn); err != nil {
			_ = f.Close()
			return err
		}
		fr.finish(fn)
		fr.close()
		fr.f = f
	case cur.Size() < fr.offset:
		if _, err := fr.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("reading log %s again: %w", fr.path, err)
		}
		fr.pending = fr.pending[:0]
	default:
		return nil
	}
	fr.r.Reset(fr.f)
	fr.offset = 0
	return fr.readLines(fn)
}
