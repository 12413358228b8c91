package cri

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerMounts turns c's volumeMounts into CRI mounts, preparing the host
// side: emptyDir directories under the pod directory, hostPath checks and
// creation as the hostPath type says, subPath directories and their bind
// mounts (see bindSubPath), and the termination-message file.
func (r *Runtime) containerMounts(pod *corev1.Pod, c *corev1.Container, attempt uint32, podIP string) ([]*runtimeapi.Mount, error) {
	volumes := map[string]*corev1.Volume{}
	for i := range pod.Spec.Volumes {
		volumes[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var out []*runtimeapi.Mount
	for i, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			return nil, fmt.Errorf("container %s: volumeMount %q: no such volume", c.Name, m.Name)
		}
		host, err := r.volumeHostPath(pod, v)
		if err != nil {
			return nil, fmt.Errorf("container %s: volume %q: %w", c.Name, v.Name, err)
		}
		if m.SubPath != "" {
			if host, err = r.bindSubPath(pod, c, i, host); err != nil {
				return nil, fmt.Errorf("pod %s/%s: container %s: volume %q: %w", pod.Namespace, pod.Name, c.Name, m.Name, err)
			}
		}
		out = append(out, &runtimeapi.Mount{
			ContainerPath: m.MountPath,
			HostPath:      host,
			Readonly:      m.ReadOnly,
			Propagation:   propagation(m.MountPropagation),
		})
	}
	if len(pod.Spec.HostAliases) > 0 && !hasMountAt(out, "/etc/hosts") {
		hosts, err := r.writeHostsFile(pod, podIP)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
		out = append(out, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: hosts})
	}
	if p := c.TerminationMessagePath; p != "" && !hasMountAt(out, p) {
		host := r.terminationLogPath(string(pod.UID), c.Name, attempt)
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			return nil, fmt.Errorf("container %s: creating termination message file: %w", c.Name, err)
		}
		if err := os.WriteFile(host, nil, 0o666); err != nil {
			return nil, fmt.Errorf("container %s: creating termination message file: %w", c.Name, err)
		}
		out = append(out, &runtimeapi.Mount{ContainerPath: p, HostPath: host})
	}
	return out, nil
}

func hasMountAt(ms []*runtimeapi.Mount, path string) bool {
	for _, m := range ms {
		if m.ContainerPath == path {
			return true
		}
	}
	return false
}

func (r *Runtime) terminationLogPath(uid, container string, attempt uint32) string {
	return filepath.Join(r.podDir(uid), "containers", container, strconv.FormatUint(uint64(attempt), 10)+"-termination-log")
}

// volumeHostPath returns (and prepares) the host directory or file of v.
func (r *Runtime) volumeHostPath(pod *corev1.Pod, v *corev1.Volume) (string, error) {
	switch {
	case v.HostPath != nil:
		return v.HostPath.Path, checkHostPath(v.HostPath)
	case v.EmptyDir != nil:
		dir := filepath.Join(r.podDir(string(pod.UID)), "volumes", "empty-dir", v.Name)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", fmt.Errorf("creating emptyDir: %w", err)
		}
		// Writable by any user of the pod, as the kubelet makes it.
		if err := os.Chmod(dir, 0o777); err != nil { //nolint:gosec // emptyDir is the pod's scratch space
			return "", fmt.Errorf("creating emptyDir: %w", err)
		}
		if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
			if err := os.Chown(dir, -1, int(*sc.FSGroup)); err != nil {
				return "", fmt.Errorf("setting fsGroup on emptyDir: %w", err)
			}
			if err := os.Chmod(dir, 0o777|fs.ModeSetgid); err != nil {
				return "", fmt.Errorf("setting fsGroup on emptyDir: %w", err)
			}
		}
		return dir, nil
	default:
		return "", errors.New("only hostPath and emptyDir volumes are supported")
	}
}

// checkHostPath checks or creates a hostPath as its type says.
func checkHostPath(h *corev1.HostPathVolumeSource) error {
	typ := corev1.HostPathUnset
	if h.Type != nil {
		typ = *h.Type
	}
	fi, err := os.Stat(h.Path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("hostPath %s: %w", h.Path, err)
	}
	if !exists {
		fi = nil
	}
	switch typ {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate, corev1.HostPathFileOrCreate:
		return createHostPath(h.Path, typ, fi)
	}
	if !exists {
		return fmt.Errorf("hostPath %s: does not exist (type %s)", h.Path, typ)
	}
	want := map[corev1.HostPathType]func(fs.FileMode) bool{
		corev1.HostPathDirectory: func(m fs.FileMode) bool { return m.IsDir() },
		corev1.HostPathFile:      func(m fs.FileMode) bool { return m.IsRegular() },
		corev1.HostPathSocket:    func(m fs.FileMode) bool { return m&fs.ModeSocket != 0 },
		corev1.HostPathCharDev:   func(m fs.FileMode) bool { return m&fs.ModeCharDevice != 0 },
		corev1.HostPathBlockDev:  func(m fs.FileMode) bool { return m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0 },
	}
	check, ok := want[typ]
	if !ok {
		return fmt.Errorf("hostPath %s: unknown type %q", h.Path, typ)
	}
	if !check(fi.Mode()) {
		return fmt.Errorf("hostPath %s: is not a %s", h.Path, strings.ToLower(string(typ)))
	}
	return nil
}

// createHostPath creates a missing DirectoryOrCreate or FileOrCreate
// hostPath (fi is nil when it is missing) or checks what is there.
func createHostPath(path string, typ corev1.HostPathType, fi fs.FileInfo) error {
	wantDir := typ == corev1.HostPathDirectoryOrCreate
	switch {
	case fi == nil && wantDir:
		return mkdirHostPath(path)
	case fi == nil:
		if err := mkdirHostPath(filepath.Dir(path)); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("hostPath %s: creating file: %w", path, err)
		}
		return f.Close()
	case wantDir && !fi.IsDir():
		return fmt.Errorf("hostPath %s: is not a directory", path)
	case !wantDir && fi.IsDir():
		return fmt.Errorf("hostPath %s: is a directory, type says FileOrCreate", path)
	}
	return nil
}

func mkdirHostPath(p string) error {
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("hostPath %s: creating directory: %w", p, err)
	}
	return nil
}

func propagation(p *corev1.MountPropagationMode) runtimeapi.MountPropagation {
	if p == nil {
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE
	}
	switch *p {
	case corev1.MountPropagationHostToContainer:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
	case corev1.MountPropagationBidirectional:
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
	default:
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE
	}
}

// writeHostsFile writes the pod's /etc/hosts with its hostAliases, as the
// kubelet does: the node's hosts file for a host-network pod, else a
// managed one naming the pod; then one line per alias.
func (r *Runtime) writeHostsFile(pod *corev1.Pod, podIP string) (string, error) {
	var b strings.Builder
	if pod.Spec.HostNetwork {
		host, err := os.ReadFile("/etc/hosts")
		if err != nil {
			return "", fmt.Errorf("reading the node's /etc/hosts: %w", err)
		}
		b.Write(host)
		if len(host) > 0 && host[len(host)-1] != '\n' {
			b.WriteByte('\n')
		}
	} else {
		hostname := pod.Spec.Hostname
		if hostname == "" {
			hostname = pod.Name
		}
		b.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
		if podIP != "" {
			fmt.Fprintf(&b, "%s\t%s\n", podIP, hostname)
		}
	}
	b.WriteString("\n# Entries added by HostAliases.\n")
	for _, a := range pod.Spec.HostAliases {
		fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
	}
	path := filepath.Join(r.podDir(string(pod.UID)), "etc-hosts")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("writing the pod's hosts file: %w", err)
	}
	return path, nil
}
