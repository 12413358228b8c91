package contentwatch

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Bounds of what one watched directory may hold: past them the path
// cannot be watched (an error, logged).
const (
	maxFiles = 2000
	maxBytes = 256 << 20
)

// hashPath returns the hash of the content at path ("" when it is
// missing, or an empty directory) and the directories to watch for it.
func hashPath(path string) (string, []string, error) {
	dirs := []string{filepath.Dir(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil && filepath.Dir(real) != dirs[0] && real != path {
		dirs = append(dirs, filepath.Dir(real))
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", dirs, nil
	case err != nil:
		return "", dirs, fmt.Errorf("reading %s: %w", path, err)
	case info.Mode().IsRegular():
		h, err := hashFile(path)
		return h, dirs, err
	case info.IsDir():
		return hashDir(path, dirs)
	}
	return "", dirs, fmt.Errorf("%s is neither a regular file nor a directory", path)
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil // removed meanwhile: missing
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, maxBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if n > maxBytes {
		return "", fmt.Errorf("%s is larger than %d MiB: too large to watch", path, maxBytes>>20)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashDir hashes every regular file under dir (symlinks to files
// followed, "..*" entries of the atomic writer skipped) by relative path,
// and returns dir and its subdirectories to watch with extra.
func hashDir(dir string, extra []string) (string, []string, error) {
	dirs := append(extra, dir)
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if strings.HasPrefix(d.Name(), "..") {
			return skip(d)
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		if len(lines) >= maxFiles {
			return fmt.Errorf("more than %d files under %s: too many to watch", maxFiles, dir)
		}
		info, err := os.Stat(p) // follows symlinks
		if err != nil || !info.Mode().IsRegular() {
			return nil //nolint:nilerr // a dangling symlink, a socket: not content
		}
		h, err := hashFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, rel+"\x00"+h)
		return nil
	})
	if err != nil {
		return "", dirs, fmt.Errorf("hashing directory %s: %w", dir, err)
	}
	if len(lines) == 0 {
		return "", dirs, nil
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:]), dirs, nil
}

func skip(d fs.DirEntry) error {
	if d.IsDir() {
		return filepath.SkipDir
	}
	return nil
}
