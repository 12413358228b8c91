package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kubeletConfiguration holds the KubeletConfiguration fields mirrorlet
// shares with the kubelet (kubelet.config.k8s.io/v1beta1). Other fields are
// ignored: they are the kubelet's business.
type kubeletConfiguration struct {
	metav1.TypeMeta    `json:",inline"`
	StaticPodPath      string              `json:"staticPodPath,omitempty"`
	StaticPodURL       string              `json:"staticPodURL,omitempty"`
	StaticPodURLHeader map[string][]string `json:"staticPodURLHeader,omitempty"`
	FileCheckFrequency metav1.Duration     `json:"fileCheckFrequency,omitempty"`
	HTTPCheckFrequency metav1.Duration     `json:"httpCheckFrequency,omitempty"`
	KubeAPIQPS         *float32            `json:"kubeAPIQPS,omitempty"`
	KubeAPIBurst       *int32              `json:"kubeAPIBurst,omitempty"`
}

// FromKubelet reads the static pod settings of a kubelet's configuration
// file into c. The container runtime endpoint is not taken: mirrorlet must
// not share a container runtime with a kubelet.
func FromKubelet(path string, c *MirrorletConfiguration) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading kubelet config: %w", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("%s: parsing YAML: %w", path, err)
	}
	var k kubeletConfiguration
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &k); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if k.Kind != "KubeletConfiguration" {
		return errors.New(path + ": kind: Invalid value: " + strconv.Quote(k.Kind) + ": must be KubeletConfiguration")
	}
	c.StaticPodPath, c.StaticPodURL, c.StaticPodURLHeader = k.StaticPodPath, k.StaticPodURL, k.StaticPodURLHeader
	if k.FileCheckFrequency.Duration != 0 {
		c.FileCheckFrequency = k.FileCheckFrequency
	}
	if k.HTTPCheckFrequency.Duration != 0 {
		c.HTTPCheckFrequency = k.HTTPCheckFrequency
	}
	if k.KubeAPIQPS != nil {
		c.KubeAPIQPS = k.KubeAPIQPS
	}
	if k.KubeAPIBurst != nil {
		c.KubeAPIBurst = k.KubeAPIBurst
	}
	return nil
}
