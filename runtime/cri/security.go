package cri

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Paths masked and made read-only in unprivileged containers, as the
// kubelet asks of the runtime.
var (
	defaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// containerSecurity merges the pod's and c's security contexts (the
// container's wins) into the CRI form, and enforces runAsNonRoot.
func containerSecurity(spec *corev1.PodSpec, c *corev1.Container, image *runtimeapi.Image, rootDir string) (*runtimeapi.LinuxContainerSecurityContext, error) {
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	out := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions:   namespaces(spec),
		SupplementalGroups: supplementalGroups(psc),
	}
	out.Privileged = sc.Privileged != nil && *sc.Privileged
	out.Capabilities = capabilities(sc.Capabilities)
	runAsUser := firstInt64(sc.RunAsUser, psc.RunAsUser)
	if runAsUser != nil {
		out.RunAsUser = &runtimeapi.Int64Value{Value: *runAsUser}
	}
	if g := firstInt64(sc.RunAsGroup, psc.RunAsGroup); g != nil {
		out.RunAsGroup = &runtimeapi.Int64Value{Value: *g}
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	if nonRoot != nil && *nonRoot {
		if err := checkNonRoot(c.Name, runAsUser, image); err != nil {
			return nil, err
		}
	}
	out.ReadonlyRootfs = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	out.NoNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	setProfiles(out, sc, psc, rootDir)
	unmasked := sc.ProcMount != nil && *sc.ProcMount == corev1.UnmaskedProcMount
	if !out.Privileged && !unmasked {
		out.MaskedPaths = defaultMaskedPaths
		out.ReadonlyPaths = defaultReadonlyPaths
	}
	return out, nil
}

func capabilities(caps *corev1.Capabilities) *runtimeapi.Capability {
	if caps == nil {
		return nil
	}
	out := &runtimeapi.Capability{}
	for _, a := range caps.Add {
		out.AddCapabilities = append(out.AddCapabilities, string(a))
	}
	for _, d := range caps.Drop {
		out.DropCapabilities = append(out.DropCapabilities, string(d))
	}
	return out
}

// setProfiles sets SELinux, seccomp and AppArmor from the container's
// security context, else the pod's.
func setProfiles(out *runtimeapi.LinuxContainerSecurityContext, sc *corev1.SecurityContext, psc *corev1.PodSecurityContext, rootDir string) {
	if o := sc.SELinuxOptions; o != nil {
		out.SelinuxOptions = &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
	} else if o := psc.SELinuxOptions; o != nil {
		out.SelinuxOptions = &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	out.Seccomp = seccompProfile(seccomp, rootDir)
	apparmor := sc.AppArmorProfile
	if apparmor == nil {
		apparmor = psc.AppArmorProfile
	}
	out.Apparmor = apparmorProfile(apparmor)
}

func firstInt64(vs ...*int64) *int64 {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

// checkNonRoot refuses to run a container as root when runAsNonRoot is set.
func checkNonRoot(name string, runAsUser *int64, image *runtimeapi.Image) error {
	if runAsUser != nil {
		if *runAsUser == 0 {
			return fmt.Errorf("container %s has runAsNonRoot and runAsUser 0: it would run as root", name)
		}
		return nil
	}
	if image == nil {
		return fmt.Errorf("container %s has runAsNonRoot but its image user is unknown", name)
	}
	if image.Uid != nil {
		if image.Uid.Value == 0 {
			return fmt.Errorf("container %s has runAsNonRoot and image will run as root", name)
		}
		return nil
	}
	if image.Username != "" {
		return fmt.Errorf("container %s has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root", name, image.Username)
	}
	return fmt.Errorf("container %s has runAsNonRoot and image will run as root", name)
}

func seccompProfile(p *corev1.SeccompProfile, rootDir string) *runtimeapi.SecurityProfile {
	if p == nil {
		return nil
	}
	switch p.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case corev1.SeccompProfileTypeLocalhost:
		ref := ""
		if p.LocalhostProfile != nil {
			ref = filepath.Join(rootDir, "seccomp", *p.LocalhostProfile)
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: ref}
	default:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	}
}

func apparmorProfile(p *corev1.AppArmorProfile) *runtimeapi.SecurityProfile {
	if p == nil {
		return nil
	}
	switch p.Type {
	case corev1.AppArmorProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case corev1.AppArmorProfileTypeLocalhost:
		ref := ""
		if p.LocalhostProfile != nil {
			ref = *p.LocalhostProfile
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: ref}
	default:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	}
}

// CPU and memory conversions as in the kubelet.
const (
	minShares     = 2
	sharesPerCPU  = 1024
	quotaPeriod   = 100000
	minQuota      = 1000
	criticalScore = -997
)

// resources converts c's requests and limits into CRI linux resources.
func resources(pod *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerResources {
	out := &runtimeapi.LinuxContainerResources{CpuShares: minShares}
	req := c.Resources.Requests.Cpu()
	if req.IsZero() {
		req = c.Resources.Limits.Cpu()
	}
	if !req.IsZero() {
		out.CpuShares = max(minShares, req.MilliValue()*sharesPerCPU/1000)
	}
	if lim := c.Resources.Limits.Cpu(); !lim.IsZero() {
		out.CpuPeriod = quotaPeriod
		out.CpuQuota = max(minQuota, lim.MilliValue()*quotaPeriod/1000)
	}
	if lim := c.Resources.Limits.Memory(); !lim.IsZero() {
		out.MemoryLimitInBytes = lim.Value()
	}
	out.OomScoreAdj = oomScoreAdj(pod, c)
	return out
}

// oomScoreAdj follows the kubelet's QoS policy: node- and cluster-critical
// static pods and Guaranteed pods are protected, BestEffort pods die first.
func oomScoreAdj(pod *corev1.Pod, c *corev1.Container) int64 {
	switch pod.Spec.PriorityClassName {
	case "system-node-critical", "system-cluster-critical":
		return criticalScore
	}
	switch qosClass(pod) {
	case corev1.PodQOSGuaranteed:
		return criticalScore
	case corev1.PodQOSBestEffort:
		return 1000
	}
	memReq := c.Resources.Requests.Memory().Value()
	capacity, ok := nodeCapacity(corev1.ResourceMemory)
	if !ok || capacity.Value() == 0 {
		return 999
	}
	score := 1000 - 1000*memReq/capacity.Value()
	return min(max(score, 3), 999)
}

// qosClass is the pod's QoS class, computed as the API server does.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	requests, limits := false, false
	guaranteed := true
	for _, c := range allContainers(&pod.Spec) {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[name]
			lim, hasLim := c.Resources.Limits[name]
			requests = requests || (hasReq && !req.IsZero())
			limits = limits || (hasLim && !lim.IsZero())
			if !hasLim || lim.IsZero() || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !requests && !limits:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	default:
		return corev1.PodQOSBurstable
	}
}

var memTotal = sync.OnceValue(func() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
})

// nodeCapacity returns the node's CPU or memory capacity.
func nodeCapacity(name corev1.ResourceName) (resource.Quantity, bool) {
	switch name {
	case corev1.ResourceCPU:
		return *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI), true
	case corev1.ResourceMemory:
		if m := memTotal(); m > 0 {
			return *resource.NewQuantity(m, resource.BinarySI), true
		}
	}
	return resource.Quantity{}, false
}
