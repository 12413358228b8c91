package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mirrorlet/mirrorlet/filesafety"
	"github.com/mirrorlet/mirrorlet/manifest/dirsource"
	"github.com/mirrorlet/mirrorlet/manifest/urlsource"
)

// refuseUnsafeSources refuses to start when a source mirrorlet trusts is
// unsafe: the kubeconfig (a credential others can read), the manifest
// directory or a manifest in it and --root-dir or a directory in it
// (writable by others than root and mirrorlet's user), a plain-HTTP
// manifest URL on the network.
// --allow-insecure-manifest-permissions turns the manifest refusals into
// warnings.
func refuseUnsafeSources(opts Options) error {
	if opts.KubeconfigPath != "" {
		if err := filesafety.CheckKubeconfig(opts.KubeconfigPath); err != nil {
			return fmt.Errorf("refusing to start: %w", err)
		}
	}
	if opts.ManifestURL != "" {
		if err := urlsource.CheckScheme(opts.ManifestURL, opts.ManifestURLAllowHTTP); err != nil {
			return fmt.Errorf("refusing to start: %w", err)
		}
	}
	problems := RootDirPermissionProblems(opts.RootDir)
	if opts.PodManifestPath != "" {
		problems = append(problems, ManifestPermissionProblems(opts.PodManifestPath)...)
	}
	for _, err := range problems {
		if !opts.AllowInsecureManifestPermissions {
			return fmt.Errorf("refusing to start: %w (--allow-insecure-manifest-permissions overrides, for development only)", err)
		}
		opts.Log.Info("Running manifests with unsafe permissions: --allow-insecure-manifest-permissions is for development only",
			"problem", err.Error())
	}
	return nil
}

// RootDirPermissionProblems returns what is unsafe about --root-dir and the
// directories in it (last good manifests, revisions, rollback requests: what
// mirrorlet runs from). A root directory that does not exist yet is no
// problem: mirrorlet creates it, private.
func RootDirPermissionProblems(path string) []error {
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	problems := appendErr(nil, filesafety.CheckRootDir(path))
	entries, err := os.ReadDir(path)
	if err != nil {
		return append(problems, fmt.Errorf("reading root directory %s: %w", path, err))
	}
	for _, e := range entries {
		if e.IsDir() {
			problems = appendErr(problems, filesafety.CheckRootDir(filepath.Join(path, e.Name())))
		}
	}
	return problems
}

// ManifestPermissionProblems returns what is unsafe about a manifest
// directory and the manifests in it (or about one manifest file). A
// directory that does not exist yet is no problem: mirrorlet waits for it.
func ManifestPermissionProblems(path string) []error {
	info, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return []error{fmt.Errorf("checking manifest path %s: %w", path, err)}
	}
	if !info.IsDir() {
		return appendErr(nil, filesafety.CheckManifest(path))
	}
	problems := appendErr(nil, filesafety.CheckManifestDir(path))
	entries, err := os.ReadDir(path)
	if err != nil {
		return append(problems, fmt.Errorf("reading manifest directory %s: %w", path, err))
	}
	for _, e := range entries {
		if dirsource.IsManifestName(e.Name()) {
			// Unreadable or odd files are the source's to report.
			var ue *filesafety.UnsafeError
			if err := filesafety.CheckManifest(filepath.Join(path, e.Name())); errors.As(err, &ue) {
				problems = append(problems, err)
			}
		}
	}
	return problems
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}
