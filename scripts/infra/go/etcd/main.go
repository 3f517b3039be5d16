// Command etcd is upstream etcd's server entry point, built from the module
// proxy because Debian's etcd (3.4) lacks the watch-progress support that
// kube-apiserver's streaming lists need. Pinned version: see go.mod.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
