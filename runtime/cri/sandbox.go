package cri

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/podlogs"
)

// RunSandbox implements mruntime.Runtime.
func (r *Runtime) RunSandbox(ctx context.Context, pod *corev1.Pod) (string, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	attempt, err := r.nextSandboxAttempt(ctx, string(pod.UID))
	if err != nil {
		return "", err
	}
	cfg := r.sandboxConfig(pod, attempt)
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", fmt.Errorf("creating pod log directory: %w", err)
	}
	if err := os.MkdirAll(r.podDir(string(pod.UID)), 0o750); err != nil {
		return "", fmt.Errorf("creating pod directory: %w", err)
	}
	resp, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return "", fmt.Errorf("running pod sandbox: %w", err)
	}
	return resp.PodSandboxId, nil
}

// nextSandboxAttempt returns one more than the highest sandbox attempt of
// the pod: the runtime refuses two sandboxes with the same metadata.
func (r *Runtime) nextSandboxAttempt(ctx context.Context, uid string) (uint32, error) {
	resp, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelManaged: "true", LabelPodUID: uid}}})
	if err != nil {
		return 0, fmt.Errorf("listing pod sandboxes: %w", err)
	}
	var next uint32
	for _, sb := range resp.Items {
		if a := sb.GetMetadata().GetAttempt(); a >= next {
			next = a + 1
		}
	}
	return next, nil
}

func (r *Runtime) podDir(uid string) string { return filepath.Join(r.opts.RootDir, "pods", uid) }

func (r *Runtime) podLogDir(pod *corev1.Pod) string {
	return podlogs.PodDir(r.opts.PodLogsDir, pod.Namespace, pod.Name, string(pod.UID))
}

func (r *Runtime) sandboxConfig(pod *corev1.Pod, attempt uint32) *runtimeapi.PodSandboxConfig {
	spec := &pod.Spec
	hostname := spec.Hostname
	if hostname == "" {
		hostname = pod.Name
	}
	if spec.HostNetwork {
		// The host's UTS namespace: the runtime must not set a hostname.
		hostname = ""
	}
	if len(hostname) > 63 {
		hostname = hostname[:63]
	}
	annotations := map[string]string{}
	for k, v := range pod.Annotations {
		annotations[k] = v
	}
	if g := spec.TerminationGracePeriodSeconds; g != nil {
		annotations[AnnotationGrace] = strconv.FormatInt(*g, 10)
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt},
		Hostname:     hostname,
		LogDirectory: r.podLogDir(pod),
		Labels:       podLabels(string(pod.UID), pod.Namespace, pod.Name),
		Annotations:  annotations,
		DnsConfig:    dnsConfig(spec),
		PortMappings: portMappings(spec),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: sandboxSecurity(spec),
		},
	}
	if sc := spec.SecurityContext; sc != nil && len(sc.Sysctls) > 0 {
		cfg.Linux.Sysctls = map[string]string{}
		for _, s := range sc.Sysctls {
			cfg.Linux.Sysctls[s.Name] = s.Value
		}
	}
	return cfg
}

// dnsConfig is the pod's own DNS settings under dnsPolicy None; otherwise
// nil, and the runtime gives the pod the host's resolv.conf.
func dnsConfig(spec *corev1.PodSpec) *runtimeapi.DNSConfig {
	if spec.DNSPolicy != corev1.DNSNone || spec.DNSConfig == nil {
		return nil
	}
	out := &runtimeapi.DNSConfig{Servers: spec.DNSConfig.Nameservers, Searches: spec.DNSConfig.Searches}
	for _, o := range spec.DNSConfig.Options {
		opt := o.Name
		if o.Value != nil {
			opt += ":" + *o.Value
		}
		out.Options = append(out.Options, opt)
	}
	return out
}

// portMappings are the hostPorts of a pod with its own network.
func portMappings(spec *corev1.PodSpec) []*runtimeapi.PortMapping {
	if spec.HostNetwork {
		return nil
	}
	var out []*runtimeapi.PortMapping
	for _, c := range allContainers(spec) {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			out = append(out, &runtimeapi.PortMapping{
				Protocol: protocol(p.Protocol), ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP})
		}
	}
	return out
}

func protocol(p corev1.Protocol) runtimeapi.Protocol {
	switch p {
	case corev1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case corev1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	default:
		return runtimeapi.Protocol_TCP
	}
}

func allContainers(spec *corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
}

func namespaces(spec *corev1.PodSpec) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	if spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if spec.HostPID {
		ns.Pid = runtimeapi.NamespaceMode_NODE
	} else if spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace {
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	if spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	return ns
}

func sandboxSecurity(spec *corev1.PodSpec) *runtimeapi.LinuxSandboxSecurityContext {
	sc := &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: namespaces(spec)}
	for _, c := range allContainers(spec) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			sc.Privileged = true
		}
	}
	if psc := spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
		sc.SupplementalGroups = supplementalGroups(psc)
		if o := psc.SELinuxOptions; o != nil {
			sc.SelinuxOptions = &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
		}
	}
	return sc
}

func supplementalGroups(psc *corev1.PodSecurityContext) []int64 {
	groups := append([]int64{}, psc.SupplementalGroups...)
	if psc.FSGroup != nil {
		groups = append(groups, *psc.FSGroup)
	}
	return groups
}

// StopPod implements mruntime.Runtime.
func (r *Runtime) StopPod(ctx context.Context, sandboxID string, grace time.Duration) error {
	if err := r.StopSandbox(ctx, sandboxID, grace); err != nil {
		return err
	}
	cctx, cancel := r.callCtx(ctx)
	defer cancel()
	if _, err := r.rt.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandboxID}); err != nil && !isNotFound(err) {
		return fmt.Errorf("removing sandbox %s: %w: %w", sandboxID, mruntime.ErrSandboxNotRemoved, err)
	}
	return nil
}

// StopSandbox implements mruntime.Runtime: running containers are stopped
// in parallel, each with grace, then the sandbox.
func (r *Runtime) StopSandbox(ctx context.Context, sandboxID string, grace time.Duration) error {
	lctx, cancel := r.callCtx(ctx)
	cs, err := r.rt.ListContainers(lctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{PodSandboxId: sandboxID}})
	cancel()
	if err != nil {
		return fmt.Errorf("listing containers of sandbox %s: %w", sandboxID, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cs.Containers))
	for i, c := range cs.Containers {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.StopContainer(ctx, c.Id, grace)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	cctx, cancel := r.callCtx(ctx)
	defer cancel()
	if _, err := r.rt.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandboxID}); err != nil && !isNotFound(err) {
		return fmt.Errorf("stopping sandbox %s: %w", sandboxID, err)
	}
	return nil
}

// PodDataUIDs implements mruntime.PodDataLister: the pods with a directory
// under RootDir/pods (mirrorlet's own; log directories are not looked at,
// as PodLogsDir may be shared with a kubelet).
func (r *Runtime) PodDataUIDs(context.Context) ([]types.UID, error) {
	entries, err := os.ReadDir(filepath.Join(r.opts.RootDir, "pods"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing pod data: %w", err)
	}
	var uids []types.UID
	for _, e := range entries {
		if e.IsDir() {
			uids = append(uids, types.UID(e.Name()))
		}
	}
	return uids, nil
}

// RemovePodData implements mruntime.Runtime: the pod's subPath bind
// mounts are unmounted, then its directory under RootDir/pods and its log
// directories (<ns>_<name>_<uid>) go. A directory with anything still
// mounted beneath it is never removed: that would delete what the mount
// shows (a hostPath's files).
func (r *Runtime) RemovePodData(_ context.Context, uid types.UID) error {
	if uid == "" || strings.ContainsAny(string(uid), "/*?[") {
		return fmt.Errorf("removing data of pod %q: invalid UID", uid)
	}
	if err := r.unmountPodDir(uid); err != nil {
		return err
	}
	dirs, err := filepath.Glob(filepath.Join(r.opts.PodLogsDir, "*_"+string(uid)))
	if err != nil {
		return fmt.Errorf("finding log directories of pod %s: %w", uid, err)
	}
	for _, dir := range append(dirs, r.podDir(string(uid))) {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("removing %s: %w", dir, err)
		}
	}
	return nil
}

// unmountPodDir removes the subPath mounts of pod uid and checks that
// nothing else is mounted beneath its directory.
func (r *Runtime) unmountPodDir(uid types.UID) error {
	dir := r.podDir(string(uid))
	if err := removeSubPathMounts(dir); err != nil {
		return fmt.Errorf("removing subPath mounts of pod %s: %w", uid, err)
	}
	mounted, err := mountBeneath(dir)
	if err != nil {
		return fmt.Errorf("removing data of pod %s: looking for mounts: %w", uid, err)
	}
	if mounted != "" {
		return fmt.Errorf("removing data of pod %s: %s is still mounted; not removed", uid, mounted)
	}
	return nil
}
