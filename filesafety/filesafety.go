package filesafety

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"k8s.io/client-go/tools/clientcmd"
)

// UnsafeError says why a file or directory cannot be trusted.
type UnsafeError struct {
	// Path of the file or directory.
	Path string
	// What it is: "manifest directory", "manifest", "kubeconfig", ...
	What string
	Mode fs.FileMode
	UID  uint32
	// Why it is unsafe: who may write or read it, and what that allows.
	Why string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("%s %s: %s", e.What, e.Path, e.Detail())
}

// Detail is the message without the path, for errors that name it already.
func (e *UnsafeError) Detail() string {
	return fmt.Sprintf("unsafe permissions (mode %s, owner uid %d): %s", e.Mode, e.UID, e.Why)
}

// ownerOf returns the owner uid of a file.
func ownerOf(info fs.FileInfo) uint32 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return 0
}

// CheckManifestDir checks the static pod directory.
func CheckManifestDir(path string) error {
	return checkWriters(path, "manifest directory")
}

// CheckRootDir checks mirrorlet's --root-dir, or a directory in it: it
// holds the last good manifests and the revisions mirrorlet runs, and the
// rollback requests it takes, so it must be as safe as the manifests.
func CheckRootDir(path string) error {
	return checkWriters(path, "root directory")
}

// CheckManifest checks one manifest file (links followed).
func CheckManifest(path string) error {
	return checkWriters(path, "manifest")
}

// checkWriters refuses a file that someone other than root and the user
// running mirrorlet can write: writable by group or others, or owned by
// another non-root user.
func checkWriters(path, what string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking permissions of %s %s: %w", what, path, err)
	}
	uid, mode := ownerOf(info), info.Mode()
	why := ""
	switch {
	case mode.Perm()&0o002 != 0:
		why = "writable by others"
	case mode.Perm()&0o020 != 0:
		why = "writable by its group"
	case uid != 0 && int(uid) != os.Geteuid():
		why = fmt.Sprintf("owned by uid %d, neither root nor the user running mirrorlet (uid %d)", uid, os.Geteuid())
	default:
		return nil
	}
	return &UnsafeError{Path: path, What: what, Mode: mode, UID: uid,
		Why: why + "; whoever can write it runs containers as root on this node (chmod go-w, chown root)"}
}

// CheckKubeconfig refuses a kubeconfig holding a credential (a token, a
// password or client key data) that group or others can read, and a
// client key or token file it names that group or others can read.
func CheckKubeconfig(path string) error {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return fmt.Errorf("checking kubeconfig %s: %w", path, err)
	}
	inline := false
	var files []string
	for _, ai := range cfg.AuthInfos {
		inline = inline || ai.Token != "" || ai.Password != "" || len(ai.ClientKeyData) > 0
		for _, f := range []string{ai.ClientKey, ai.TokenFile} {
			if f != "" && !filepath.IsAbs(f) {
				f = filepath.Join(filepath.Dir(path), f)
			}
			if f != "" {
				files = append(files, f)
			}
		}
	}
	if inline {
		if err := checkReaders(path, "kubeconfig"); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := checkReaders(f, "credential file named by kubeconfig "+path+","); err != nil {
			return err
		}
	}
	return nil
}

// checkReaders refuses a credential file group or others can read.
func checkReaders(path, what string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking permissions of %s %s: %w", what, path, err)
	}
	if info.Mode().Perm()&0o044 == 0 {
		return nil
	}
	return &UnsafeError{Path: path, What: what, Mode: info.Mode(), UID: ownerOf(info),
		Why: "it holds a credential and group or others can read it; whoever reads it acts as this node (chmod 600)"}
}
