package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/controllers/podstatus"
	"github.com/mirrorlet/mirrorlet/nodeapi"
	"github.com/mirrorlet/mirrorlet/nodeapi/servingcert"
)

// defaultPodLogsDir is where the CRI runtime writes logs when no
// directory is given.
const defaultPodLogsDir = "/var/log/pods"

// setupNodeAPI starts the kubelet-compatible node API (unless its port is
// 0). It listens at once, so a port in use fails the start; it needs no
// API server to start (authentication fails requests until one answers).
func (a *agent) setupNodeAPI(ctx context.Context, g *errgroup.Group) error {
	o := a.opts.NodeAPI
	if o.Port == 0 {
		return nil
	}
	auth, err := nodeapi.NewDelegatingAuth(nodeapi.AuthConfig{
		RestConfig: a.opts.RestConfig, ClientCAFile: o.ClientCAFile, Anonymous: o.AnonymousAuth, Webhook: o.WebhookAuth,
	})
	if err != nil {
		return err
	}
	certs, err := a.servingCertificate()
	if err != nil {
		return err
	}
	logsDir := a.opts.PodLogsDir
	if logsDir == "" {
		logsDir = defaultPodLogsDir
	}
	cfg := nodeapi.Config{
		NodeName: a.opts.NodeName, Address: o.Address, Port: o.Port, GetCertificate: certs.GetCertificate,
		Authenticator: auth.Authenticator, Authorizer: auth.Authorizer, Pods: nodePods{a}, PodLogsDir: logsDir,
		EnableProfilingHandler: o.EnableProfilingHandler, Log: a.opts.Log.WithName("nodeapi"),
	}
	if err := a.addStreamingHandlers(&cfg); err != nil {
		return err
	}
	srv, err := nodeapi.New(cfg)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(o.Address, strconv.Itoa(o.Port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node API: listening on %s (--address, --port; 0 disables): %w", addr, err)
	}
	if o.EnableProfilingHandler && o.EnableContentionProfiling {
		// As the kubelet: every blocking event is recorded (rate 1).
		goruntime.SetBlockProfileRate(1)
	}
	g.Go(func() error { auth.Run(ctx); return nil })
	g.Go(func() error { certs.Run(ctx); return nil })
	g.Go(func() error { return srv.Serve(ctx, l) })
	return nil
}

// servingCertificate picks the node API's certificate: the operator's
// files, else one from the cluster (--rotate-server-certificates), else a
// self-signed one.
func (a *agent) servingCertificate() (servingcert.Source, error) {
	o := a.opts.NodeAPI
	if o.TLSCertFile != "" {
		return servingcert.FromFiles(o.TLSCertFile, o.TLSPrivateKeyFile)
	}
	host := hostname()
	names := servingcert.Names{Host: host, IPs: []net.IP{net.ParseIP(a.opts.NodeIP)}, DNS: []string{host}}
	dir := filepath.Join(a.rootDir(), "pki")
	if o.RotateServerCertificates {
		return servingcert.FromCluster(servingcert.ClusterConfig{
			NodeName: a.opts.NodeName, Names: names, Dir: dir, RestConfig: a.opts.RestConfig,
		})
	}
	return servingcert.SelfSigned(dir, names, a.opts.Log.WithName("nodeapi"))
}

func (a *agent) rootDir() string {
	if a.opts.RootDir != "" {
		return a.opts.RootDir
	}
	return "/var/lib/mirrorlet"
}

// hostname is the host's name, lower-cased, as the Node's Hostname address.
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return strings.ToLower(h)
}

// nodePods serves the desired static pods to the node API, with the status
// their mirrors show.
type nodePods struct{ a *agent }

func (p nodePods) GetPod(namespace, name string) (*corev1.Pod, bool) {
	sp, ok := p.a.desired.Get(types.NamespacedName{Namespace: namespace, Name: name})
	if !ok {
		return nil, false
	}
	return sp.Pod, true
}

func (p nodePods) ListPods() []*corev1.Pod {
	sps := p.a.desired.List()
	out := make([]*corev1.Pod, 0, len(sps))
	now := time.Now()
	for _, sp := range sps {
		pod := sp.Pod.DeepCopy()
		pod.Status = podstatus.Of(sp, p.a.states, p.a.desired.Problems(sp.Key()), p.a.opts.NodeIP, p.a.runtime.Name(), now)
		out = append(out, pod)
	}
	return out
}
