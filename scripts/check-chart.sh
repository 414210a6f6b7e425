#!/usr/bin/env bash
# Checks the Helm chart charts/fabric-routing:
#   1. its crds/ are byte-for-byte the generated crds/ of the repository;
#   2. `helm lint --strict` with the default values and with
#      ci/full-values.yaml (every optional part on);
#   3. `helm template` of both: every document parses as YAML, has
#      apiVersion/kind/metadata.name, no (kind, namespace, name) twice, and
#      the expected kinds are there (and only those);
#   4. the other TLS / leader election / RBAC combinations render, NOTES.txt
#      renders, and settings that must fail do (schema, cross-field checks);
#   5. the sidecar injection webhook: MutatingWebhookConfiguration (pods
#      labelled routing.fabric.dev/sidecar=true, CREATE, Service port 443 ->
#      9443, caBundle source per TLS mode), the operator's --sidecar-* flags,
#      and webhook.enabled=false;
#   6. the dashboards are valid Grafana JSON (schemaVersion >= 36, a
#      ${datasource} variable), the ConfigMap carries them with the label
#      grafana_dashboard: "1", and every sidecar metric they query is in
#      docs/metrics.md.
# Installs helm first (scripts/install-helm.sh) and needs python3 with
# PyYAML (Debian: python3-yaml). Prints a summary; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=charts/fabric-routing
FULL="$CHART/ci/full-values.yaml"
RELEASE=fabric
NAMESPACE=fabric-system

HELM="$(bash scripts/install-helm.sh | tail -n 1)"
[ -x "$HELM" ] || { echo "check-chart: helm not installed" >&2; exit 1; }

# A python3 that has PyYAML: the one on PATH, else Debian's.
PYTHON=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' >/dev/null 2>&1; then
    PYTHON="$candidate"
    break
  fi
done
if [ -z "$PYTHON" ]; then
  echo "check-chart: no python3 with PyYAML; installing python3-yaml with apt-get" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-yaml >/dev/null
  PYTHON=/usr/bin/python3
  "$PYTHON" -c 'import yaml' || { echo "check-chart: PyYAML still missing" >&2; exit 1; }
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
results=()
pass() { passed=$((passed + 1)); results+=("ok    $1"); echo "ok: $1"; }
fail() { failed=$((failed + 1)); results+=("FAIL  $1"); echo "FAIL: $1" >&2; }
steps=0
# run NAME CMD...: runs CMD with its output in a log, shown on failure.
run() {
  local name="$1"; shift
  steps=$((steps + 1))
  local log="$WORK/step-$steps.log"
  if "$@" >"$log" 2>&1; then
    pass "$name"
  else
    fail "$name"
    sed 's/^/    /' "$log" >&2
  fi
}
# must_fail NAME PATTERN CMD...: CMD must exit non-zero and print PATTERN.
must_fail() {
  local name="$1" pattern="$2"; shift 2
  steps=$((steps + 1))
  local log="$WORK/step-$steps.log"
  if "$@" >"$log" 2>&1; then
    fail "$name (rendered, should have been refused)"
  elif grep -q -- "$pattern" "$log"; then
    pass "$name"
  else
    fail "$name (refused without the expected message: $pattern)"
    sed 's/^/    /' "$log" >&2
  fi
}

echo "helm: $HELM ($("$HELM" version --short 2>/dev/null || "$HELM" version))"
echo "python: $PYTHON ($("$PYTHON" -c 'import sys, yaml; print(sys.version.split()[0], "PyYAML", yaml.__version__)'))"

# 1. CRDs in the chart == generated CRDs.
crds_equal() {
  local status=0
  diff -r --brief crds "$CHART/crds" || status=1
  diff -r -u crds "$CHART/crds" | head -n 40 || true
  if [ "$status" -ne 0 ]; then
    echo "the chart's CRDs differ from crds/: cp crds/*.yaml $CHART/crds/ (and delete any the generator no longer writes)"
  fi
  return "$status"
}
run "chart crds/ equal crds/" crds_equal

# 2. Lint.
run "helm lint (default values)" "$HELM" lint --strict "$CHART"
run "helm lint (ci/full-values.yaml)" "$HELM" lint --strict "$CHART" -f "$FULL"

# 3. Render and inspect.
template() { "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --include-crds "$@"; }
# render FILE ARGS...: helm template into $WORK/FILE.
render() { local out="$WORK/$1"; shift; template "$@" >"$out"; }
run "helm template (default values)" render default.yaml
run "helm template (ci/full-values.yaml)" render full.yaml -f "$FULL"
run "helm template (tls.mode=secret, leader election off, cluster-wide Secrets)" render secret.yaml \
  --set tls.mode=secret --set tls.secretName=operator-tls \
  --set operator.leaderElection.enabled=false --set rbac.secrets.clusterWide=true
run "helm template (certManager with an issuerRef)" render issuer.yaml \
  --set tls.mode=certManager --set tls.certManager.issuerRef.name=corp-ca \
  --set tls.certManager.issuerRef.kind=ClusterIssuer
run "helm template (webhook.enabled=false)" render nowebhook.yaml --set webhook.enabled=false

# NOTES.txt renders (an install dry run that needs no cluster).
notes() {
  KUBECONFIG=/nonexistent "$HELM" install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --dry-run=client "$@" >"$WORK/notes.txt"
  grep -q "routing.fabric.dev/sidecar=true" "$WORK/notes.txt"
  grep -q "^Injection:" "$WORK/notes.txt"
}
notes_both() { notes && notes -f "$FULL"; }
run "NOTES.txt (default values, ci/full-values.yaml)" notes_both

# 4. What must be refused.
must_fail "refused: unknown value (schema)" "additional properties" template --set operator.replica=2
must_fail "refused: bad tls.mode (schema)" "tls/mode" template --set tls.mode=vault
must_fail "refused: 2 replicas without leader election" "needs operator.replicas: 1" template --set operator.replicas=2 --set operator.leaderElection.enabled=false
must_fail "refused: tls.mode=secret without secretName" "tls.secretName" template --set tls.mode=secret
must_fail "refused: bad webhook.failurePolicy (schema)" "webhook/failurePolicy" template --set webhook.failurePolicy=Maybe
must_fail "refused: bad webhook.nativeSidecars (schema)" "webhook/nativeSidecars" template --set webhook.nativeSidecars=yes

# 5. Manifests and dashboards.
inspect() {
  "$PYTHON" - "$WORK" "$CHART" <<'PY'
import json, os, re, subprocess, sys
import yaml

work, chart = sys.argv[1], sys.argv[2]
problems = []

def load(name):
    path = os.path.join(work, name)
    if not os.path.exists(path):
        problems.append(f"{name}: not rendered")
        return []
    docs = []
    with open(path) as f:
        for i, doc in enumerate(yaml.safe_load_all(f)):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                problems.append(f"{name}: document {i} is not a mapping")
                continue
            for key in ("apiVersion", "kind"):
                if not doc.get(key):
                    problems.append(f"{name}: document {i} has no {key}")
            if not (doc.get("metadata") or {}).get("name"):
                problems.append(f"{name}: document {i} ({doc.get('kind')}) has no metadata.name")
            docs.append(doc)
    seen = set()
    for d in docs:
        key = (d.get("kind"), (d.get("metadata") or {}).get("namespace"), (d.get("metadata") or {}).get("name"))
        if key in seen:
            problems.append(f"{name}: {key} rendered twice")
        seen.add(key)
    return docs

def kinds(docs):
    out = {}
    for d in docs:
        out[d["kind"]] = out.get(d["kind"], 0) + 1
    return out

def expect_kinds(name, docs, expected):
    got = kinds(docs)
    if got != expected:
        problems.append(f"{name}: kinds {dict(sorted(got.items()))}, expected {dict(sorted(expected.items()))}")
    return got

def one(docs, kind, name_suffix=""):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    return found[0] if len(found) == 1 else None

def container(docs):
    dep = one(docs, "Deployment")
    return dep, dep["spec"]["template"]["spec"]["containers"][0]

base = {"CustomResourceDefinition": 4, "ServiceAccount": 1, "ClusterRole": 3, "ClusterRoleBinding": 1,
        "Role": 1, "RoleBinding": 1, "Service": 1, "Deployment": 1, "MutatingWebhookConfiguration": 1}
# Without cert-manager the operator writes the webhook's caBundle: one more
# ClusterRole and binding (get/patch on that one configuration).
webhook_rbac = {"ClusterRole": base["ClusterRole"] + 1, "ClusterRoleBinding": base["ClusterRoleBinding"] + 1}
app_version = yaml.safe_load(open(os.path.join(chart, "Chart.yaml")))["appVersion"]

def webhook_args(fullname, image, requests, limits, configuration=True):
    args = ["--webhook-listen", "0.0.0.0:9443",
            "--sidecar-operator-url", f"https://{fullname}.fabric-system.svc:7600",
            "--sidecar-image", image, "--sidecar-image-pull-policy", "IfNotPresent", "--native-sidecars", "auto",
            "--sidecar-metrics-port", "7481"]
    for name, quantity in sorted(requests.items()):
        args += ["--sidecar-request", f"{name}={quantity}"]
    for name, quantity in sorted(limits.items()):
        args += ["--sidecar-limit", f"{name}={quantity}"]
    if configuration:
        args += ["--webhook-configuration", fullname]
    return args

def check_webhook(name, docs, fullname, ca_injected_by_cert_manager):
    mwc = one(docs, "MutatingWebhookConfiguration")
    if not mwc:
        problems.append(f"{name}: no MutatingWebhookConfiguration")
        return
    if mwc["metadata"]["name"] != fullname or len(mwc["webhooks"]) != 1:
        problems.append(f"{name}: MutatingWebhookConfiguration {mwc['metadata']['name']} with {len(mwc['webhooks'])} webhooks")
        return
    w = mwc["webhooks"][0]
    expected = {
        "name": "sidecar-injector.routing.fabric.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "failurePolicy": "Fail", "timeoutSeconds": 5, "matchPolicy": "Equivalent", "reinvocationPolicy": "Never",
        "clientConfig": {"service": {"name": fullname, "namespace": "fabric-system", "path": "/mutate-pods", "port": 443}},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "Namespaced"}],
        "objectSelector": {"matchLabels": {"routing.fabric.dev/sidecar": "true"}},
        "namespaceSelector": {},
    }
    if w != expected:
        problems.append(f"{name}: webhook {w}, expected {expected} (no caBundle without a cluster to read it from)")
    annotation = (mwc["metadata"].get("annotations") or {}).get("cert-manager.io/inject-ca-from")
    if ca_injected_by_cert_manager and annotation != f"fabric-system/{fullname}-serving":
        problems.append(f"{name}: cert-manager.io/inject-ca-from is {annotation!r}")
    if not ca_injected_by_cert_manager:
        if annotation:
            problems.append(f"{name}: cert-manager annotation without cert-manager")
        role = one(docs, "ClusterRole", "-webhook")
        rules = role and role["rules"]
        if rules != [{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
                      "resourceNames": [fullname], "verbs": ["get", "patch"]}]:
            problems.append(f"{name}: webhook ClusterRole rules {rules}")
    svc = one(docs, "Service")
    port = [p for p in svc["spec"]["ports"] if p["name"] == "webhook"]
    if port != [{"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}]:
        problems.append(f"{name}: Service webhook port {port}")
    c = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    if {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} not in c["ports"]:
        problems.append(f"{name}: no container port webhook 9443: {c['ports']}")

# Default values.
default = load("default.yaml")
summary = {}
summary["default"] = expect_kinds("default", default, {**base, **webhook_rbac, "Secret": 1})
dep, c = container(default)
args = c["args"]
want = ["run", "--listen", "0.0.0.0:7600", "--http", "0.0.0.0:8080", "--tls-cert", "/tls/tls.crt",
        "--tls-key", "/tls/tls.key", "--leader-election-namespace", "$(POD_NAMESPACE)",
        "--unbound-node-ids", "allow", "--peer-ca-secret", "fabric-fabric-routing-peer-ca",
        "--peer-certificate-lifetime", "24h", "--peer-trust-domain", "cluster.local"]
want += webhook_args("fabric-fabric-routing", f"routing-sidecar:{app_version}",
                     {"cpu": "10m", "memory": "32Mi"}, {"memory": "128Mi"})
if args != want:
    problems.append(f"default: operator args {args}, expected {want}")
if dep["spec"]["replicas"] != 1:
    problems.append("default: replicas is not 1")
env = {e["name"]: e for e in c["env"]}
for var, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
    if env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != field:
        problems.append(f"default: env {var} is not the downward API {field}")
if c["livenessProbe"]["httpGet"] != {"path": "/healthz", "port": "http"}:
    problems.append("default: liveness probe is not /healthz on http")
if c["readinessProbe"]["httpGet"] != {"path": "/readyz", "port": "http"}:
    problems.append("default: readiness probe is not /readyz on http")
sc = c["securityContext"]
psc = dep["spec"]["template"]["spec"]["securityContext"]
if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
        and sc.get("capabilities", {}).get("drop") == ["ALL"] and psc.get("runAsNonRoot")
        and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"):
    problems.append(f"default: operator security context is not locked down: pod {psc}, container {sc}")
svc = one(default, "Service")
ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
if ports != {"grpc": 7600, "http": 8080, "webhook": 443}:
    problems.append(f"default: Service ports {ports}")
secret = one(default, "Secret")
if secret["type"] != "kubernetes.io/tls" or set(secret["data"]) != {"tls.crt", "tls.key", "ca.crt"}:
    problems.append("default: the self-signed Secret is not a kubernetes.io/tls Secret with tls.crt, tls.key, ca.crt")
crd_names = sorted(d["metadata"]["name"] for d in default if d["kind"] == "CustomResourceDefinition")
check_webhook("default", default, "fabric-fabric-routing", ca_injected_by_cert_manager=False)
# RBAC: the operator's ClusterRole.
role = [d for d in default if d["kind"] == "ClusterRole" and d["metadata"]["name"] == dep["metadata"]["name"]][0]
rules = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
plural = ["routepolicies", "neighborpolicies", "routekeys", "linkstateareas"]
expected_rules = {("routing.fabric.dev", p): {"get", "list", "watch"} for p in plural}
expected_rules.update({("routing.fabric.dev", p + "/status"): {"patch"} for p in plural})
expected_rules.update({("", "pods"): {"get", "list", "watch"}, ("events.k8s.io", "events"): {"create", "patch"},
                       ("authentication.k8s.io", "tokenreviews"): {"create"}})
if rules != expected_rules:
    problems.append(f"default: operator ClusterRole rules {rules}, expected {expected_rules}")
for d in default:
    if d["kind"] in ("ClusterRole", "Role"):
        for rule in d["rules"]:
            if "*" in rule["verbs"] or "*" in rule["resources"] or "*" in rule["apiGroups"]:
                problems.append(f"default: {d['kind']} {d['metadata']['name']} has a wildcard rule")
            if "secrets" in rule["resources"] and d["kind"] == "ClusterRole":
                problems.append("default: secrets granted cluster-wide without rbac.secrets.clusterWide")

# Every optional part on.
full = load("full.yaml")
summary["full"] = expect_kinds("full", full, {
    **base, "Role": 3, "RoleBinding": 3, "Certificate": 2, "Issuer": 2, "PodDisruptionBudget": 1,
    "NetworkPolicy": 3, "ServiceMonitor": 1, "PodMonitor": 1, "ConfigMap": 1, "ValidatingWebhookConfiguration": 1})
validating = one(full, "ValidatingWebhookConfiguration")
if validating:
    hook = validating["webhooks"][0]
    if (hook["failurePolicy"] != "Ignore" or hook["clientConfig"]["service"]["path"] != "/validate-fabric"
            or hook["rules"][0]["resources"] != ["routepolicies", "neighborpolicies", "routekeys", "linkstateareas"]):
        problems.append(f"full: the ValidatingWebhookConfiguration is not the fabric kinds' Ignore hook: {hook}")
sidecar_policies = [d for d in full if d and d.get("kind") == "NetworkPolicy" and d["metadata"]["name"].endswith("-sidecars")]
if sorted(p["metadata"]["namespace"] for p in sidecar_policies) != ["fabric", "fabric-staging"]:
    problems.append(f"full: expected a sidecar NetworkPolicy in fabric and fabric-staging, got {sidecar_policies}")
for policy in sidecar_policies:
    ports = [r["ports"][0]["port"] for r in policy["spec"]["ingress"]]
    if ports != ["fabric-peer", "fabric-metrics", 8080]:
        problems.append(f"full: sidecar NetworkPolicy ports {ports}")
pod_monitor = one(full, "PodMonitor")
if pod_monitor:
    spec = pod_monitor["spec"]
    if (spec["selector"] != {"matchLabels": {"routing.fabric.dev/sidecar": "true"}}
            or spec["podMetricsEndpoints"][0]["port"] != "fabric-metrics"
            or spec["namespaceSelector"] != {"matchNames": ["fabric", "fabric-staging"]}):
        problems.append(f"full: the PodMonitor does not scrape fabric-metrics of the fabric pods: {spec}")
dep, c = container(full)
if dep["spec"]["replicas"] != 2 or "--no-leader-election" in c["args"]:
    problems.append("full: expected 2 replicas with leader election")
identity_args = " ".join(c["args"])
if ("--fabric-namespace fabric --fabric-namespace fabric-staging --unbound-node-ids refuse" not in identity_args):
    problems.append(f"full: identity flags missing from {c['args']}")
if not c["image"].startswith("registry.example.com/fabric/fabric-operator@sha256:"):
    problems.append(f"full: operator image {c['image']} does not use the digest")
full_webhook = webhook_args("fabric-fabric-routing", "registry.example.com/fabric/routing-sidecar:0.1.0",
                            {"cpu": "20m", "memory": "48Mi"}, {"memory": "192Mi"}, configuration=False)
start = c["args"].index("--webhook-listen") if "--webhook-listen" in c["args"] else -1
full_webhook += ["--validation", "warn"]
if start < 0 or c["args"][start:start + len(full_webhook)] != full_webhook:
    problems.append(f"full: webhook args {c['args']}, expected {full_webhook} (cert-manager injects the caBundle)")
check_webhook("full", full, "fabric-fabric-routing", ca_injected_by_cert_manager=True)
sm = one(full, "ServiceMonitor")
if sm["apiVersion"] != "monitoring.coreos.com/v1" or sm["spec"]["endpoints"][0]["port"] != "http":
    problems.append("full: ServiceMonitor is not monitoring.coreos.com/v1 on the http port")
serving = one(full, "Certificate", "-serving")
if not serving or serving["spec"]["secretName"] != dep["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"]:
    problems.append("full: the serving Certificate does not write the Secret the Deployment mounts")
secret_roles = sorted(d["metadata"]["namespace"] for d in full if d["kind"] == "Role" and d["metadata"]["name"].endswith("-secrets"))
if secret_roles != ["fabric", "fabric-staging"]:
    problems.append(f"full: Secret Roles in {secret_roles}, expected fabric, fabric-staging")
cm = one(full, "ConfigMap", "-dashboards")
dash_files = sorted(f for f in os.listdir(os.path.join(chart, "dashboards")) if f.endswith(".json"))
if not cm:
    problems.append("full: no dashboards ConfigMap")
else:
    if cm["metadata"]["labels"].get("grafana_dashboard") != "1":
        problems.append("full: dashboards ConfigMap lacks the label grafana_dashboard: \"1\"")
    if sorted(cm["data"]) != dash_files:
        problems.append(f"full: dashboards ConfigMap keys {sorted(cm['data'])}, expected {dash_files}")
    for key, text in cm["data"].items():
        with open(os.path.join(chart, "dashboards", key)) as f:
            if json.loads(text) != json.load(f):
                problems.append(f"full: ConfigMap entry {key} differs from {chart}/dashboards/{key}")

# Leader election off + existing Secret + cluster-wide Secrets.
secret_mode = load("secret.yaml")
summary["tls.mode=secret"] = expect_kinds("secret", secret_mode, {**base, "ClusterRole": 5, "ClusterRoleBinding": 3})
check_webhook("secret", secret_mode, "fabric-fabric-routing", ca_injected_by_cert_manager=False)
dep, c = container(secret_mode)
if ("--no-leader-election" not in c["args"] or "--leader-election-namespace" in c["args"]
        or dep["spec"]["strategy"]["type"] != "Recreate"):
    # (the two flags conflict in fabric-operator's CLI)
    problems.append(f"secret: leader election off should pass --no-leader-election alone and use Recreate: {c['args']}")
if dep["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] != "operator-tls":
    problems.append("secret: the Deployment does not mount tls.secretName")

issuer = load("issuer.yaml")
summary["certManager+issuerRef"] = expect_kinds("issuer", issuer, {**base, "Certificate": 1})
cert = one(issuer, "Certificate")
if cert and cert["spec"]["issuerRef"] != {"name": "corp-ca", "kind": "ClusterIssuer"}:
    problems.append(f"issuer: issuerRef {cert['spec']['issuerRef']}")
check_webhook("issuer", issuer, "fabric-fabric-routing", ca_injected_by_cert_manager=True)

# Webhook off: no configuration, no port, --no-webhook.
nowebhook = load("nowebhook.yaml")
summary["webhook.enabled=false"] = expect_kinds("nowebhook", nowebhook, {
    **{k: v for k, v in base.items() if k != "MutatingWebhookConfiguration"}, "Secret": 1})
dep, c = container(nowebhook)
if "--no-webhook" not in c["args"] or any(a.startswith("--sidecar-") or a.startswith("--webhook-") for a in c["args"]):
    problems.append(f"nowebhook: args {c['args']}")
if [p for p in one(nowebhook, "Service")["spec"]["ports"] if p["name"] == "webhook"]:
    problems.append("nowebhook: the Service still has the webhook port")

# Dashboards.
docs_metrics = set(re.findall(r"`(fabric_[a-z0-9_]+)`", open("docs/metrics.md").read()))
operator_documented = any(m.startswith("fabric_operator_") for m in docs_metrics)
for name in dash_files:
    path = os.path.join(chart, "dashboards", name)
    d = json.load(open(path))
    if d.get("schemaVersion", 0) < 36:
        problems.append(f"{name}: schemaVersion {d.get('schemaVersion')} < 36")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        problems.append(f"{name}: no datasource template variable")
    def panels(ps):
        for p in ps or []:
            yield p
            yield from panels(p.get("panels"))
    ids = [p["id"] for p in panels(d["panels"])]
    if len(ids) != len(set(ids)):
        problems.append(f"{name}: duplicate panel ids")
    for p in panels(d["panels"]):
        if p["type"] == "row":
            continue
        for ds in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]:
            if not ds or ds.get("uid") != "${datasource}":
                problems.append(f"{name}: panel {p['title']!r} does not use ${{datasource}}")
                break
    out = subprocess.run([sys.executable, "scripts/dashboard-metrics.py", path], capture_output=True, text=True)
    if out.returncode != 0:
        problems.append(f"{name}: dashboard-metrics.py failed: {out.stderr.strip()}")
    used = out.stdout.split()
    for metric in used:
        if metric.startswith("fabric_operator_") and not operator_documented:
            continue
        if metric not in docs_metrics:
            problems.append(f"{name}: queries {metric}, which docs/metrics.md does not list")
    summary[name] = f"{len(ids)} panels, {len(used)} metrics"

for key, value in summary.items():
    print(f"  {key}: {value}")
print(f"  CRDs: {', '.join(crd_names)}")
if not operator_documented:
    print("  (fabric_operator_* metrics are not in docs/metrics.md yet: not checked against it)")
for p in problems:
    print(f"problem: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}
if inspect >"$WORK/inspect.log" 2>&1; then
  pass "rendered manifests and dashboards"
  cat "$WORK/inspect.log"
else
  fail "rendered manifests and dashboards"
  sed 's/^/    /' "$WORK/inspect.log" >&2
fi

echo
echo "chart check summary ($CHART):"
for line in "${results[@]}"; do echo "  $line"; done
if [ "$failed" -eq 0 ]; then
  echo "chart checks: all $passed passed"
else
  echo "chart checks: $failed of $((passed + failed)) failed"
  exit 1
fi
