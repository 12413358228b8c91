// Package config is mirrorlet's versioned configuration file,
// MirrorletConfiguration (apiVersion config.mirrorlet.io/v1alpha1): one field
// per flag, defaulted and validated with errors that name the file and the
// field. Flags given on the command line override the file.
//
// FromKubelet reads the fields of a kubelet's KubeletConfiguration that mean
// the same thing (staticPodPath, staticPodURL, ...), so static pods can be
// moved from a kubelet to mirrorlet without retyping.
package config
