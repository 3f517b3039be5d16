//go:build tools

// Package tools pins the Kubernetes commands this module builds, so that
// 'go mod tidy' keeps their dependencies in go.mod/go.sum. The commands are
// built with 'go build k8s.io/kubernetes/cmd/<name>' from this directory
// (see scripts/infra/k8s.sh); this file itself is never compiled.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
