package podlogs

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Query names the container whose logs are wanted.
type Query struct {
	// LogsDir is the runtime's pod logs directory (podLogsDir).
	LogsDir string
	// Namespace of the pod.
	Namespace string
	// Pod is the mirror name (<pod>-<node>) or the static pod's own name on
	// Node; the exact name is tried first.
	Pod string
	// Node is the node name the mirror name is made with.
	Node string
	// Container is the container's name; "" when the pod has only one.
	Container string
	// UID, when set, picks that instance of the pod only.
	UID string
}

// Container is the log directory of one container of one pod instance.
type Container struct {
	Namespace, Pod, UID, Name string
	// Dir is <LogsDir>/<Namespace>_<Pod>_<UID>/<Name>.
	Dir string
}

// Attempt is one attempt's log file.
type Attempt struct {
	N    uint64
	Path string
}

// Find returns the log directory of q's container. When the pod has several
// instances (a replaced pod's logs not removed yet), it picks the one whose
// newest log file was written last.
func Find(q Query) (*Container, error) {
	pod, err := findPod(q)
	if err != nil {
		return nil, err
	}
	name, err := chooseContainer(pod, q.Container)
	if err != nil {
		return nil, err
	}
	return &Container{Namespace: q.Namespace, Pod: pod.name, UID: pod.uid, Name: name,
		Dir: filepath.Join(pod.path, name)}, nil
}

// podDir is one pod instance's log directory.
type podDir struct {
	name, uid, path string
}

func findPod(q Query) (podDir, error) {
	entries, err := os.ReadDir(q.LogsDir)
	if err != nil {
		return podDir{}, fmt.Errorf("reading pod logs directory: %w", err)
	}
	byName := map[string][]podDir{}
	for _, e := range entries {
		ns, name, uid, ok := splitPodDir(e.Name())
		if e.IsDir() && ok && ns == q.Namespace && (q.UID == "" || uid == q.UID) {
			byName[name] = append(byName[name], podDir{name: name, uid: uid, path: filepath.Join(q.LogsDir, e.Name())})
		}
	}
	names := []string{q.Pod}
	if q.Node != "" {
		names = append(names, q.Pod+"-"+strings.ToLower(q.Node))
	}
	for _, name := range names {
		if dirs := byName[name]; len(dirs) > 0 {
			return newestPod(dirs), nil
		}
	}
	looked := make([]string, len(names))
	for i, name := range names {
		looked[i] = q.Namespace + "_" + name + "_<uid>"
	}
	there := "none"
	if len(byName) > 0 {
		there = fmt.Sprint(sortedKeys(byName))
	}
	return podDir{}, fmt.Errorf("no logs of pod %s in namespace %s under %s (looked for %s); pods with logs there: %s",
		q.Pod, q.Namespace, q.LogsDir, strings.Join(looked, " and "), there)
}

// splitPodDir splits <namespace>_<pod>_<uid>; none of the three may hold
// an underscore.
func splitPodDir(dir string) (ns, name, uid string, ok bool) {
	parts := strings.Split(dir, "_")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// newestPod returns the instance whose newest log file is the newest;
// ties go to the greatest UID, so the choice is stable.
func newestPod(dirs []podDir) podDir {
	best, bestTime := dirs[0], newestLog(dirs[0].path)
	for _, d := range dirs[1:] {
		t := newestLog(d.path)
		if t.After(bestTime) || t.Equal(bestTime) && d.uid > best.uid {
			best, bestTime = d, t
		}
	}
	return best
}

// newestLog returns the modification time of the newest log file of any
// container of a pod directory; zero if there is none.
func newestLog(podPath string) time.Time {
	var newest time.Time
	files, _ := filepath.Glob(filepath.Join(podPath, "*", "*.log"))
	for _, f := range files {
		if info, err := os.Stat(f); err == nil && info.ModTime().After(newest) {
			newest = info.ModTime()
		}
	}
	return newest
}

func chooseContainer(pod podDir, want string) (string, error) {
	entries, err := os.ReadDir(pod.path)
	if err != nil {
		return "", fmt.Errorf("reading logs of pod %s: %w", pod.name, err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	switch {
	case want != "" && slices.Contains(names, want):
		return want, nil
	case want != "":
		return "", fmt.Errorf("no logs of container %s of pod %s in %s; containers with logs: %v", want, pod.name, pod.path, names)
	case len(names) == 1:
		return names[0], nil
	case len(names) == 0:
		return "", fmt.Errorf("pod %s has no container logs in %s", pod.name, pod.path)
	}
	return "", fmt.Errorf("a container name must be specified for pod %s, choose one of: %v", pod.name, names)
}

// Attempts returns the container's attempt log files, oldest first. The
// error wraps fs.ErrNotExist when the directory is gone.
func (c *Container) Attempts() ([]Attempt, error) {
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("reading logs of container %s of pod %s: %w", c.Name, c.Pod, err)
	}
	var out []Attempt
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok || e.IsDir() {
			continue
		}
		if n, err := strconv.ParseUint(base, 10, 32); err == nil {
			out = append(out, Attempt{N: n, Path: filepath.Join(c.Dir, e.Name())})
		}
	}
	slices.SortFunc(out, func(a, b Attempt) int { return cmp.Compare(a.N, b.N) })
	return out, nil
}

// attempt returns the latest attempt, or with previous the one before it.
func (c *Container) attempt(previous bool) (Attempt, error) {
	all, err := c.Attempts()
	if err != nil {
		return Attempt{}, err
	}
	switch {
	case len(all) == 0:
		return Attempt{}, fmt.Errorf("no log files of container %s of pod %s in %s", c.Name, c.Pod, c.Dir)
	case !previous:
		return all[len(all)-1], nil
	case len(all) == 1:
		return Attempt{}, fmt.Errorf("container %s of pod %s has no previous attempt: only %s", c.Name, c.Pod, all[0].Path)
	}
	return all[len(all)-2], nil
}

// errGone says the container's log directory was removed (so was the pod).
var errGone = errors.New("container logs removed")

// latest returns the newest attempt; nil when there is none yet, errGone
// when the directory is gone.
func (c *Container) latest() (*Attempt, error) {
	all, err := c.Attempts()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errGone
	}
	if err != nil || len(all) == 0 {
		return nil, err
	}
	return &all[len(all)-1], nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
