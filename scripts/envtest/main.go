// Command kube-apiserver is the upstream API server built from the
// k8s.io/kubernetes Go module, for this project's real-API tests (envtest).
// No registry ships a kube-apiserver binary; scripts/install-envtest.sh
// builds this package into a cache keyed by the Kubernetes version.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
