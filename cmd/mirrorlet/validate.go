package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/controllers/mirror"
	"github.com/mirrorlet/mirrorlet/filesafety"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	"github.com/mirrorlet/mirrorlet/manifest/dirsource"
	"github.com/mirrorlet/mirrorlet/manifest/urlsource"
)

// validationError says problems were printed; main exits 1 quietly.
type validationError struct{ count int }

func (e *validationError) Error() string { return fmt.Sprintf("%d problems", e.count) }

type validateOptions struct {
	nodeName, kubeconfig, caFile string
	headers                      []string
	serverDryRun                 bool
}

func newValidateCommand() *cobra.Command {
	var o validateOptions
	cmd := &cobra.Command{
		Use:   "validate PATH|URL ...",
		Short: "Check static pod manifests (files, directories, URLs) the way mirrorlet reads them, without a cluster",
		Long: "validate runs the parsing, defaulting and validation mirrorlet applies to manifests, plus the checks\n" +
			"across manifests (duplicate names, host ports), and prints every problem as FILE: FIELD: MESSAGE.\n" +
			"With --server-dry-run it also asks the API server to create each mirror pod in dry-run mode,\n" +
			"so admission (PodSecurity, webhooks, quotas) that would refuse a mirror is found before deploy.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	f := cmd.Flags()
	host, _ := os.Hostname()
	f.StringVar(&o.nodeName, "node-name", strings.ToLower(host), "Node name the pods are validated for (mirror names are <name>-<node>).")
	f.BoolVar(&o.serverDryRun, "server-dry-run", false, "Also dry-run create every mirror pod on the API server (needs --kubeconfig).")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig for --server-dry-run.")
	f.StringArrayVar(&o.headers, "manifest-url-header", nil, "HTTP headers for URLs, 'Name:Value,...' (as mirrorlet's flag).")
	f.StringVar(&o.caFile, "manifest-url-ca-file", "", "PEM CA bundle for HTTPS URLs.")
	return cmd
}

func (o *validateOptions) run(cmd *cobra.Command, args []string) error {
	sources := make([]string, len(args))
	for i := range args {
		sources[i] = fmt.Sprintf("arg%d", i)
	}
	set := desired.New(sources...)
	var problems []string
	for _, w := range o.warnings(args) {
		_, _ = fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
	}
	for i, arg := range args {
		snap, err := o.load(cmd.Context(), arg)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		set.Update(sources[i], snap)
	}
	for _, p := range set.AllProblems() {
		problems = append(problems, p.Err.Error())
	}
	if o.serverDryRun {
		dry, err := o.dryRun(cmd.Context(), set.List())
		if err != nil {
			return err
		}
		problems = append(problems, dry...)
	}
	sort.Strings(problems)
	for _, p := range problems {
		_, _ = fmt.Fprintln(cmd.OutOrStdout(), p)
	}
	if len(problems) > 0 {
		return &validationError{count: len(problems)}
	}
	_, _ = fmt.Fprintf(cmd.OutOrStdout(), "OK: %d static pods valid for node %s\n", len(set.List()), o.nodeName)
	return nil
}

// warnings returns what mirrorlet would refuse at start about the files
// and kubeconfig given. They are warnings, not problems: validate often
// runs on a checkout or a CI machine, whose modes and owners are not the
// node's; mirrorlet itself refuses them on the node.
func (o *validateOptions) warnings(args []string) []string {
	var warnings []string
	for _, arg := range args {
		if isURL(arg) {
			if err := urlsource.CheckScheme(arg, false); err != nil {
				warnings = append(warnings, err.Error())
			}
			continue
		}
		for _, err := range app.ManifestPermissionProblems(arg) {
			warnings = append(warnings, "mirrorlet would refuse to start: "+err.Error())
		}
	}
	if o.kubeconfig != "" {
		if err := filesafety.CheckKubeconfig(o.kubeconfig); err != nil {
			warnings = append(warnings, "mirrorlet would refuse to start: "+err.Error())
		}
	}
	return warnings
}

func isURL(arg string) bool {
	return strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://")
}

// load reads one argument: a URL, a directory or a file.
func (o *validateOptions) load(ctx context.Context, arg string) (desired.Snapshot, error) {
	if isURL(arg) {
		header, err := app.ParseHeaders(o.headers)
		if err != nil {
			return desired.Snapshot{}, err
		}
		src, err := urlsource.New(urlsource.Config{URL: arg, Header: header, CAFile: o.caFile, NodeName: o.nodeName,
			AllowHTTP: true, Publish: func(desired.Snapshot) {}})
		if err != nil {
			return desired.Snapshot{}, err
		}
		return src.FetchOnce(ctx)
	}
	info, err := os.Stat(arg)
	if err != nil {
		return desired.Snapshot{}, fmt.Errorf("%s: %w", arg, err)
	}
	if info.IsDir() {
		var snap *desired.Snapshot
		// Permissions are warnings (see warnings); the content is checked.
		src, err := dirsource.New(dirsource.Config{Path: arg, NodeName: o.nodeName, AllowInsecurePermissions: true,
			Publish: func(s desired.Snapshot) { snap = &s }})
		if err != nil {
			return desired.Snapshot{}, err
		}
		src.Rescan()
		if snap == nil {
			return desired.Snapshot{}, fmt.Errorf("%s: directory cannot be read", arg)
		}
		return *snap, nil
	}
	data, err := dirsource.ReadFile(arg)
	if err != nil {
		return desired.Snapshot{}, &manifest.Error{Origin: arg, Err: err}
	}
	sp, err := manifest.Load(data, manifest.Identity{NodeName: o.nodeName, Source: manifest.SourceFile, Origin: arg})
	if err != nil {
		return desired.Snapshot{}, err
	}
	return desired.Snapshot{Pods: []*manifest.StaticPod{sp}}, nil
}

// dryRun asks the API server whether it would accept every mirror.
func (o *validateOptions) dryRun(ctx context.Context, pods []*manifest.StaticPod) ([]string, error) {
	cfg, err := loadKubeconfig(o.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--server-dry-run: %w", err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("creating API client: %w", err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: o.nodeName, UID: "00000000-0000-0000-0000-000000000000"}}
	var problems []string
	for _, sp := range pods {
		if err := c.Create(ctx, mirror.Build(sp, node), client.DryRunAll); err != nil {
			problems = append(problems, fmt.Sprintf("%s: API server would refuse mirror pod %s: %v", sp.Origin, sp.Key(), err))
		}
	}
	return problems, nil
}
