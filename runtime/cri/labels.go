package cri

// Labels on every sandbox and container mirrorlet creates. They are how
// ListPods recognises its own and reads a pod's identity back after a restart.
const (
	LabelManaged      = "mirrorlet.io/managed"
	LabelPodUID       = "mirrorlet.io/pod-uid"
	LabelPodName      = "mirrorlet.io/pod-name"
	LabelPodNamespace = "mirrorlet.io/pod-namespace"
	LabelContainer    = "mirrorlet.io/container-name"
	LabelInit         = "mirrorlet.io/init"

	// AnnotationGrace records the pod's terminationGracePeriodSeconds on the
	// sandbox, so a pod whose manifest is gone is stopped with its own grace.
	AnnotationGrace = "mirrorlet.io/termination-grace-period"
	// AnnotationImage records a container's image as the manifest names it
	// (the runtime is given the resolved image ID).
	AnnotationImage = "mirrorlet.io/image"
)

func podLabels(uid, namespace, name string) map[string]string {
	return map[string]string{
		LabelManaged:      "true",
		LabelPodUID:       uid,
		LabelPodName:      name,
		LabelPodNamespace: namespace,
	}
}

func managedSelector() map[string]string {
	return map[string]string{LabelManaged: "true"}
}
