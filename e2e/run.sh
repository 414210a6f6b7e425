#!/usr/bin/env bash
# The kind E2E of fabric routing: both images built from images/Dockerfile,
# a fresh kind cluster, the Helm chart, four fabric pods with routing
# sidecars, signed routing, and five checks. e2e/README.md explains the
# prerequisites, what each check proves and how to debug a failure;
# docs/getting-started-kind.md does the same steps by hand.
#
#   e2e/run.sh              # build, create a cluster, check, delete the cluster
#   E2E_KEEP=1 e2e/run.sh   # keep the cluster afterwards (success or failure)
#
# Checks:
#   1. every RoutePolicy / NeighborPolicy is Applied True "N/N sidecars on
#      current version" (RouteKeys: Accepted with an active key) and every
#      sidecar has a signed route to every destination, edges via core-1;
#   2. deleting pod core-1 reroutes both edges through core-2 within
#      E2E_CONVERGENCE_TARGET seconds (measured on the sidecars' /routes);
#   3. a rogue pod that claims node id core-1 with a key of its own is
#      rejected: with peer TLS (the chart's default) its sessions are refused
#      at the TLS handshake, without it its signatures are; either counter of
#      the edges rises and no sidecar uses its routes;
#   4. with core-1 back, every RouteKey activates a new key and retires the
#      old one while no reject counter of any sidecar moves;
#   5. a NeighborPolicy edit (core-1's link cost 1 -> 10) reaches Applied
#      2/2 for its new generation and moves the edges' next hops to core-2;
#   6. (opt-in, E2E_CHECK_OPERATOR_SPOOF=1) the operator refuses a pod that
#      is not a fabric sidecar and asks for core-1's config.
#
# Environment (all optional):
#   E2E_KEEP=1                keep the cluster, the work dir and the images
#   E2E_TIMEOUT=180           seconds, the bound of every wait
#   E2E_CONVERGENCE_TARGET=5  seconds allowed for check 2's reroute
#   E2E_CLUSTER_NAME          kind cluster name (default fabric-e2e-<random>)
#   E2E_KIND_NODE_IMAGE       kind node image (Kubernetes 1.29 or newer)
#   E2E_IMAGE_TAG             tag of the two images (default e2e-<random>)
#   E2E_SKIP_BUILD=1          use existing fabric-operator:TAG and
#                             routing-sidecar:TAG instead of building
#   E2E_APP_IMAGE             the fabric pods' app container
#                             (default registry.k8s.io/pause:3.10)
#   E2E_INJECTION             auto (default): the chart's webhook when the
#                             chart has one, else manual; webhook; manual
#                             (run.sh writes the sidecar container itself)
#   E2E_ARTIFACTS=DIR         on failure, also write the diagnostics and
#                             `kind export logs` there
#   E2E_CHECK_OPERATOR_SPOOF=1  also run check 6: a pod that is not a fabric
#                             sidecar asks the operator for core-1's config
#                             and must be refused (off by default: slow)
#   HELM                      a helm binary (default: scripts/install-helm.sh,
#                             else helm on PATH)
#
# Needs docker (with BuildKit), kind, kubectl, curl, and helm (see HELM).
# Exit status: 0 all checks passed, 1 a check or a step failed, 2 usage or a
# missing prerequisite.
set -euo pipefail

usage() { sed -n '2,51p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
case ${1:-} in
  -h | --help) usage; exit 0 ;;
  '') ;;
  *) echo "e2e/run.sh: no arguments expected (settings are environment variables, see --help)" >&2; exit 2 ;;
esac

if [ "${BASH_VERSINFO[0]}" -lt 4 ] || { [ "${BASH_VERSINFO[0]}" = 4 ] && [ "${BASH_VERSINFO[1]}" -lt 4 ]; }; then
  echo "e2e/run.sh: needs bash 4.4 or newer (this is $BASH_VERSION)" >&2
  exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
E2E_DIR="$ROOT/e2e"
cd "$ROOT"

random_id() { od -An -N3 -tx1 /dev/urandom | tr -d ' \n'; }
RUN_ID=$(random_id)
KEEP=${E2E_KEEP:-0}
TIMEOUT=${E2E_TIMEOUT:-180}
CONVERGENCE_TARGET=${E2E_CONVERGENCE_TARGET:-5}
CLUSTER=${E2E_CLUSTER_NAME:-fabric-e2e-$RUN_ID}
TAG=${E2E_IMAGE_TAG:-e2e-$RUN_ID}
APP_IMAGE=${E2E_APP_IMAGE:-registry.k8s.io/pause:3.10}
INJECTION=${E2E_INJECTION:-auto}
OPERATOR_IMAGE="fabric-operator:$TAG"
SIDECAR_IMAGE="routing-sidecar:$TAG"

# The release: namespace fabric-system, release "fabric", so every chart
# object is named fabric-fabric-routing (docs/install.md).
RELEASE=fabric
OPERATOR_NS=fabric-system
FULLNAME=fabric-fabric-routing
OPERATOR_SELECTOR="app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=operator"
OPERATOR_URL="https://$FULLNAME.$OPERATOR_NS.svc:7600"
TOKEN_AUDIENCE=fabric-operator

# The fabric (e2e/manifests): four pods in namespace fabric, named after
# their node ids. Keep in sync with e2e/manifests/neighbor-policies.yaml.
FABRIC_NS=fabric
NODES="edge-a core-1 core-2 edge-b"
DESTINATIONS="api-a dns ledger payments web-a"
originates() { # NODE: the destinations it serves (its bootstrap config)
  case $1 in
    edge-a) echo "web-a api-a" ;;
    edge-b) echo "payments ledger" ;;
    core-1 | core-2) echo "dns" ;;
  esac
}
role_of() { case $1 in edge-*) echo edge ;; *) echo core ;; esac; }
# Destinations NODE does not originate: the ones it must learn.
remote_destinations() {
  local d out=''
  for d in $DESTINATIONS; do
    case " $(originates "$1") " in *" $d "*) ;; *) out="$out $d" ;; esac
  done
  echo "$out"
}
# Objects that report Applied, with the number of sidecars each selects.
APPLIED_OBJECTS="routepolicies/fabric-default:4 neighborpolicies/edge-uplinks:2 neighborpolicies/core-downlinks:2"
ROUTE_KEYS="edge-a core-1 core-2 edge-b"
SIGNATURE_REASONS="unsigned unknown_key key_not_yet_valid key_expired bad_signature"
ROGUE=rogue-core-1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fabric-e2e.XXXXXX")
PF_DIR="$WORK/port-forwards"
mkdir -p "$PF_DIR" "$WORK/rejects" "$WORK/sidecars"
# Never the user's kubeconfig: kind writes this one, kubectl and helm use it.
export KUBECONFIG="$WORK/kubeconfig"
CLUSTER_CREATED=0
BUILT_IMAGES=0
WAIT_OUTPUT=''

# ---------------------------------------------------------------- output

now_ms() {
  if [ -n "${EPOCHREALTIME:-}" ]; then
    local t=${EPOCHREALTIME/[.,]/}
    echo $((10#$t / 1000))
  else
    echo $(($(date +%s) * 1000))
  fi
}
T0=$(now_ms)
seconds_since() { # MS: seconds since that time, one decimal
  local ms=$(($(now_ms) - $1))
  printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}
log() { printf '[e2e %6ss] %s\n' "$(seconds_since "$T0")" "$*"; }
section() { printf '\n[e2e %6ss] === %s ===\n' "$(seconds_since "$T0")" "$*"; }
ok() { printf '[e2e %6ss] OK: %s\n' "$(seconds_since "$T0")" "$*"; }

# ---------------------------------------------------------------- failure

kd() { kubectl --request-timeout=10s "$@" 2>&1 || true; }

# Everything needed to understand a failure: the fabric objects with their
# status, events, the operator's logs and view, each sidecar's logs and
# peers. Every command is bounded and may fail.
dump_diagnostics() {
  [ "$CLUSTER_CREATED" = 1 ] || { echo "(no cluster: nothing to dump)"; return 0; }
  local pod port
  echo "======================== diagnostics: cluster $CLUSTER ========================"
  echo "--- kubectl get nodes,pods"
  kd get nodes -o wide
  kd get pods -A -o wide
  echo "--- kubectl get routepolicies,neighborpolicies,routekeys,linkstateareas -A"
  kd get routepolicies,neighborpolicies,routekeys,linkstateareas -A -o wide
  echo "--- status of the fabric objects (namespace $FABRIC_NS)"
  kd -n "$FABRIC_NS" get routepolicies,neighborpolicies,routekeys -o \
    jsonpath='{range .items[*]}{.kind} {.metadata.name} generation {.metadata.generation}{"\n"}  spec: {.spec}{"\n"}  status: {.status}{"\n"}{end}'
  echo "--- events in $FABRIC_NS (last 60)"
  kd -n "$FABRIC_NS" get events --sort-by=.metadata.creationTimestamp | tail -n 60
  echo "--- Lease fabric-operator"
  kd -n "$OPERATOR_NS" get lease fabric-operator -o jsonpath='holder {.spec.holderIdentity}, renewed {.spec.renewTime}{"\n"}'
  echo "--- operator logs (last 250 lines per pod)"
  kd -n "$OPERATOR_NS" logs -l "$OPERATOR_SELECTOR" --all-containers --prefix --tail=250
  for pod in $(kd -n "$OPERATOR_NS" get pods -l "$OPERATOR_SELECTOR" -o jsonpath='{.items[*].metadata.name}'); do
    case $(kd -n "$OPERATOR_NS" get pod "$pod" -o jsonpath='{.status.containerStatuses[0].restartCount}') in
      '' | 0) ;;
      *) echo "--- previous logs of $pod"; kd -n "$OPERATOR_NS" logs "$pod" --previous --tail=100 ;;
    esac
  done
  if port=$(pf_port operator 2>/dev/null); then
    echo "--- operator GET /sidecars"
    curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$port/sidecars" 2>&1 || true
    echo
    echo "--- operator GET /status"
    curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$port/status" 2>&1 || true
    echo
  fi
  for pod in $(kd -n "$FABRIC_NS" get pods -o jsonpath='{.items[*].metadata.name}'); do
    echo "--- pod $pod: containers"
    kd -n "$FABRIC_NS" get pod "$pod" -o jsonpath='{range .status.initContainerStatuses[*]}  init {.name}: ready={.ready} restarts={.restartCount} {.state}{"\n"}{end}{range .status.containerStatuses[*]}  {.name}: ready={.ready} restarts={.restartCount} {.state}{"\n"}{end}'
    echo "--- pod $pod: sidecar logs (last 80 lines)"
    if [ "$pod" = "$ROGUE" ]; then
      kd -n "$FABRIC_NS" logs "$pod" --all-containers --tail=80
    else
      kd -n "$FABRIC_NS" logs "$pod" -c routing-sidecar --tail=80
    fi
    if port=$(pf_port "sidecar-$pod" 2>/dev/null); then
      echo "--- pod $pod: sidecar GET /peers"
      curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$port/peers" 2>&1 || true
      echo
    fi
  done
  echo "======================== end of diagnostics ========================"
}

# fail MESSAGE: prints what failed, the diagnostics, and exits 1. Only from
# the main shell (not inside $(...)).
fail() {
  printf '\n[e2e %6ss] FAILED: %s\n\n' "$(seconds_since "$T0")" "$*" >&2
  dump_diagnostics 2>&1 | tee "$WORK/diagnostics.txt" >&2 || true
  printf '\n[e2e] FAILED: %s\n[e2e] diagnostics saved in %s/diagnostics.txt\n' "$*" "$WORK" >&2
  if [ -n "${E2E_ARTIFACTS:-}" ]; then
    mkdir -p "$E2E_ARTIFACTS" 2>/dev/null || true
    cp "$WORK/diagnostics.txt" "$E2E_ARTIFACTS/" 2>/dev/null || true
    if [ "$CLUSTER_CREATED" = 1 ]; then
      kind export logs "$E2E_ARTIFACTS/kind-logs" --name "$CLUSTER" >/dev/null 2>&1 || true
    fi
  fi
  exit 1
}

# Missing prerequisite: no cluster involved, exit 2.
need() {
  command -v "$1" >/dev/null 2>&1 || { echo "e2e/run.sh: $1 is needed: $2" >&2; exit 2; }
}

# ---------------------------------------------------------------- port-forwards

# pf_start NAME NAMESPACE TARGET REMOTE_PORT: `kubectl port-forward` of
# TARGET's REMOTE_PORT to a local port the OS picks (":PORT"), read back
# from kubectl's "Forwarding from 127.0.0.1:LOCAL -> REMOTE" line. Works
# for a sidecar API bound to 127.0.0.1 in the pod: the forward ends on the
# pod's localhost. State lives in files, so it may run in a subshell.
pf_start() {
  local name=$1 ns=$2 target=$3 remote=$4 log pid port deadline
  log="$PF_DIR/$name.log"
  pf_stop "$name"
  echo "$ns $target $remote" >"$PF_DIR/$name.target"
  kubectl -n "$ns" port-forward --address 127.0.0.1 "$target" ":$remote" >"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PF_DIR/$name.pid"
  deadline=$(($(now_ms) + 30000))
  while :; do
    port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9][0-9]*\) -> .*/\1/p' "$log" | head -n 1)
    if [ -n "$port" ]; then
      echo "$port" >"$PF_DIR/$name.port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "kubectl port-forward $target :$remote exited: $(tail -n 3 "$log" | tr '\n' ' ')"
      return 1
    fi
    if [ "$(now_ms)" -ge "$deadline" ]; then
      echo "kubectl port-forward $target :$remote printed no local port within 30 s"
      return 1
    fi
    sleep 0.2
  done
}

pf_stop() {
  local pid
  if [ -f "$PF_DIR/$1.pid" ]; then
    pid=$(cat "$PF_DIR/$1.pid")
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$PF_DIR/$1.pid" "$PF_DIR/$1.port"
}

# pf_port NAME: the local port of a running forward; restarts it (same
# target) when kubectl exited, e.g. after a connection reset.
pf_port() {
  local name=$1 pid ns target remote
  if [ -f "$PF_DIR/$name.pid" ] && [ -f "$PF_DIR/$name.port" ]; then
    pid=$(cat "$PF_DIR/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      cat "$PF_DIR/$name.port"
      return 0
    fi
  fi
  [ -f "$PF_DIR/$name.target" ] || { echo "no port-forward named $name"; return 1; }
  read -r ns target remote <"$PF_DIR/$name.target"
  pf_start "$name" "$ns" "$target" "$remote" >/dev/null || return 1
  cat "$PF_DIR/$name.port"
}

stop_port_forwards() {
  local f
  for f in "$PF_DIR"/*.pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}

# api_get NAME PATH: GET on a forwarded HTTP API.
api_get() {
  local port
  port=$(pf_port "$1") || return 1
  curl -sS --noproxy '*' --max-time 5 "http://127.0.0.1:$port$2"
}

# ---------------------------------------------------------------- cleanup

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  stop_port_forwards
  if [ "$CLUSTER_CREATED" = 1 ]; then
    if [ "$KEEP" = 1 ]; then
      printf '[e2e] E2E_KEEP=1: cluster %s kept. Use it with:\n  export KUBECONFIG=%s\n' "$CLUSTER" "$KUBECONFIG"
      printf '  kubectl get routepolicies,neighborpolicies,routekeys -n %s\n' "$FABRIC_NS"
      printf '[e2e] delete it with: kind delete cluster --name %s\n' "$CLUSTER"
    else
      log "deleting kind cluster $CLUSTER"
      kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 ||
        echo "[e2e] warning: kind delete cluster --name $CLUSTER failed; delete it by hand" >&2
    fi
  fi
  if [ "$BUILT_IMAGES" = 1 ] && [ "$KEEP" != 1 ]; then
    docker image rm "$OPERATOR_IMAGE" "$SIDECAR_IMAGE" >/dev/null 2>&1
  fi
  if { [ "$rc" = 0 ] || [ "$rc" = 2 ]; } && [ "$KEEP" != 1 ]; then
    rm -rf "$WORK"
  else
    echo "[e2e] work dir kept: $WORK (kubeconfig, port-forward and build logs, diagnostics)" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- waiting

# wait_until INTERVAL WHAT CHECK [ARGS...]: runs CHECK every INTERVAL
# seconds until it succeeds, at most E2E_TIMEOUT seconds. CHECK prints what
# it observed (one line); on timeout that last observation is the failure
# message. The output of the successful run is left in WAIT_OUTPUT.
wait_until() {
  local interval=$1 what=$2 deadline out last='(no observation yet)'
  shift 2
  deadline=$(($(now_ms) + TIMEOUT * 1000))
  while :; do
    if out=$("$@" 2>&1); then
      WAIT_OUTPUT=$out
      return 0
    fi
    [ -z "$out" ] || last=$out
    if [ "$(now_ms)" -ge "$deadline" ]; then
      fail "timed out after ${TIMEOUT} s waiting for $what; last observation: $last"
    fi
    sleep "$interval"
  done
}

# ---------------------------------------------------------------- checks on objects

# applied KIND/NAME N: Accepted True, and Applied True with "N/N sidecars on
# current version" for the object's current generation.
applied() {
  local kind=${1%%/*} name=${1#*/} n=$2 line gen observed accepted status cgen message selected appliedn
  line=$(kubectl -n "$FABRIC_NS" get "$kind" "$name" -o jsonpath='{.metadata.generation}|{.status.observedGeneration}|{.status.conditions[?(@.type=="Accepted")].status}|{.status.conditions[?(@.type=="Applied")].status}|{.status.conditions[?(@.type=="Applied")].observedGeneration}|{.status.conditions[?(@.type=="Applied")].message}|{.status.selectedSidecars}|{.status.appliedSidecars}') ||
    { echo "kubectl get $kind $name failed: $line"; return 1; }
  IFS='|' read -r gen observed accepted status cgen message selected appliedn <<<"$line"
  if [ "$accepted" = True ] && [ "$status" = True ] && [ "$observed" = "$gen" ] &&
    { [ -z "$cgen" ] || [ "$cgen" = "$gen" ]; } &&
    [ "$message" = "$n/$n sidecars on current version" ] && [ "$selected" = "$n" ] && [ "$appliedn" = "$n" ]; then
    echo "$kind/$name generation $gen: Applied $message"
    return 0
  fi
  echo "$kind/$name: generation ${gen:-?}, observedGeneration ${observed:-none}, Accepted=${accepted:-none}, Applied=${status:-none} (of generation ${cgen:-none}) \"${message}\", selectedSidecars ${selected:-none}, appliedSidecars ${appliedn:-none}; expected Applied=True \"$n/$n sidecars on current version\" of generation ${gen:-?}"
  return 1
}

# route_key_ready NAME: Accepted True for its generation, an active key
# that status.keys lists as Active.
route_key_ready() {
  local line gen observed accepted active listed
  line=$(kubectl -n "$FABRIC_NS" get routekeys "$1" -o jsonpath='{.metadata.generation}|{.status.observedGeneration}|{.status.conditions[?(@.type=="Accepted")].status}|{.status.activeKeyId}|{.status.keys[?(@.state=="Active")].keyId}') ||
    { echo "kubectl get routekeys $1 failed: $line"; return 1; }
  IFS='|' read -r gen observed accepted active listed <<<"$line"
  if [ "$accepted" = True ] && [ "$observed" = "$gen" ] && [ -n "$active" ] && [ "$active" = "$listed" ]; then
    echo "$active"
    return 0
  fi
  echo "RouteKey $1: generation ${gen:-?}, observedGeneration ${observed:-none}, Accepted=${accepted:-none}, activeKeyId ${active:-none}, Active in status.keys: ${listed:-none}"
  return 1
}

lease_held() {
  local holder pods
  holder=$(kubectl -n "$OPERATOR_NS" get lease fabric-operator -o jsonpath='{.spec.holderIdentity}' 2>&1) ||
    { echo "no Lease fabric-operator in $OPERATOR_NS yet ($holder)"; return 1; }
  pods=$(kubectl -n "$OPERATOR_NS" get pods -l "$OPERATOR_SELECTOR" -o jsonpath='{.items[*].metadata.name}')
  case " $pods " in
    *" $holder "*) echo "$holder"; return 0 ;;
  esac
  echo "Lease fabric-operator is held by '${holder}', not by an operator pod ($pods)"
  return 1
}

# ---------------------------------------------------------------- sidecars

# The routing-sidecar container of POD (a regular container, or a native
# sidecar among the init containers) and its API port (--api, else
# FABRIC_API, else 7480), into $WORK/sidecars/POD as "CONTAINER IMAGE PORT".
inspect_sidecar() {
  local pod=$1 lines line name image args api port
  lines=$(kubectl -n "$FABRIC_NS" get pod "$pod" -o jsonpath='{range .spec.initContainers[*]}{.name}|{.image}|{.args}|{.env[?(@.name=="FABRIC_API")].value}{"\n"}{end}{range .spec.containers[*]}{.name}|{.image}|{.args}|{.env[?(@.name=="FABRIC_API")].value}{"\n"}{end}') ||
    { echo "kubectl get pod $pod failed: $lines"; return 1; }
  line=$(grep '^routing-sidecar|' <<<"$lines" | head -n 1) || true
  if [ -z "$line" ]; then
    echo "pod $pod has no container routing-sidecar (containers and init containers: $(cut -d'|' -f1,2 <<<"$lines" | tr '\n' ' '))"
    return 1
  fi
  IFS='|' read -r name image args api <<<"$line"
  case $args in
    *'"--api","'*) api=$(sed -n 's/.*"--api","\([^"]*\)".*/\1/p' <<<"$args") ;;
    *'"--api='*) api=$(sed -n 's/.*"--api=\([^"]*\)".*/\1/p' <<<"$args") ;;
  esac
  port=${api##*:}
  echo "$name $image ${port:-7480}" >"$WORK/sidecars/$pod"
  echo "$name $image ${port:-7480}"
}

# routes_of NODE DEST...: one line per destination, "DEST NEXT_HOP SIGNED"
# (NEXT_HOP "-" when the sidecar has no route), from GET /routes/DEST.
routes_of() {
  local node=$1 port line nh signed i=0 body
  shift
  local dests=("$@") urls=() d
  port=$(pf_port "sidecar-$node") || { echo "$node: no port-forward to its API ($port)"; return 1; }
  for d in "${dests[@]}"; do urls+=("http://127.0.0.1:$port/routes/$d"); done
  # One JSON document per line (the API answers compact JSON).
  body=$(curl -sS --noproxy '*' --max-time 5 -w '\n' "${urls[@]}" 2>&1) || { echo "$node: GET /routes failed: $body"; return 1; }
  while IFS= read -r line; do
    [ "$i" -lt "${#dests[@]}" ] || break
    nh=$(sed -n 's/.*"next_hop":"\([^"]*\)".*/\1/p' <<<"$line")
    case $line in *'"signed":true'*) signed=signed ;; *) signed=unsigned ;; esac
    printf '%s %s %s\n' "${dests[$i]}" "${nh:--}" "$signed"
    i=$((i + 1))
  done <<<"$body"
  [ "$i" = "${#dests[@]}" ] || { echo "$node: $i answers for ${#dests[@]} destinations"; return 1; }
}

# routed VIA NODE...: every NODE has a signed route to every destination it
# does not originate and, when VIA is not empty, each edge reaches all of
# them through VIA. Prints what is not so.
routed() {
  local via=$1 node out dest nh signed problems=''
  shift
  for node in "$@"; do
    # shellcheck disable=SC2046 # one argument per destination
    if ! out=$(routes_of "$node" $(remote_destinations "$node")); then
      problems="$problems; $out"
      continue
    fi
    while read -r dest nh signed; do
      if [ "$nh" = - ]; then
        problems="$problems; $node: no route to $dest"
      elif [ "$signed" != signed ]; then
        problems="$problems; $node: route to $dest via $nh is not signed"
      elif [ -n "$via" ] && [ "$(role_of "$node")" = edge ] && [ "$nh" != "$via" ]; then
        problems="$problems; $node: $dest via $nh, expected via $via"
      fi
    done <<<"$out"
  done
  if [ -z "$problems" ]; then
    echo "routed${via:+ via $via}"
    return 0
  fi
  echo "${problems#; }"
  return 1
}

# next_hops NODE...: "node: dest via hop, ..." for the log.
next_hops() {
  local node out
  for node in "$@"; do
    # shellcheck disable=SC2046
    out=$(routes_of "$node" $(remote_destinations "$node")) || out="(unreachable)"
    printf '    %-7s %s\n' "$node" "$(awk '{ printf "%s%s via %s (%s)", sep, $1, $2, $3; sep = ", " }' <<<"$out")"
  done
}

# rejects NODE: "REASON COUNT" for every reason of
# fabric_announcement_rejects_total on the sidecar's /metrics (docs/metrics.md).
rejects() {
  local body
  body=$(api_get "sidecar-$1" /metrics) || { echo "$1: GET /metrics failed: $body"; return 1; }
  awk '/^fabric_announcement_rejects_total\{/ {
         if (match($0, /reason="[^"]*"/)) print substr($0, RSTART + 8, RLENGTH - 9), $NF
       }' <<<"$body" | sort
}

# tls_refusals NODE: peer sessions NODE refused at the TLS layer (no or an
# untrusted certificate, or one naming another node).
tls_refusals() {
  local body
  body=$(api_get "sidecar-$1" /metrics) || { echo "$1: GET /metrics failed: $body"; return 1; }
  awk '/^fabric_session_ends_total\{reason="(tls_handshake|identity_mismatch)"\}/ { sum += $NF } END { print sum + 0 }' <<<"$body"
}

# reject_changes BEFORE AFTER: "REASON BEFORE->AFTER" for every reason whose
# count changed between two `rejects` snapshots.
reject_changes() {
  awk 'NR == FNR { before[$1] = $2; next }
       { b = ($1 in before) ? before[$1] : 0; if ($2 != b) printf "%s %s->%s\n", $1, b, $2 }' "$1" "$2"
}

signature_changes() { # BEFORE AFTER
  local reasons
  reasons=$(tr ' ' '|' <<<"$SIGNATURE_REASONS")
  reject_changes "$1" "$2" | grep -E "^($reasons) " || true
}

# The pods' identity: a restarted sidecar starts its counters from zero.
pod_identities() {
  kubectl -n "$FABRIC_NS" get pods -l app.kubernetes.io/name=fabric-e2e -o \
    jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid} {.status.initContainerStatuses[*].restartCount} {.status.containerStatuses[*].restartCount}{"\n"}{end}' | sort
}

# ---------------------------------------------------------------- the fabric pods

operator_ca() {
  kubectl -n "$OPERATOR_NS" get secret "$FULLNAME-tls" -o jsonpath='{.data.ca\.crt}' | base64 -d
}

# render_pod NODE: the pod of one fabric node. An app container (pause)
# and the labels the operator and the webhook read. With the webhook, the
# routing.fabric.dev/originate annotation says what the node serves and the
# webhook adds the sidecar. In manual mode the pod carries what the webhook
# would add (operator/src/webhook/inject.rs): the container routing-sidecar,
# the bootstrap config and the operator's CA as annotations, projected with
# the ServiceAccount token into /var/run/secrets/fabric, and an emptyDir
# state dir; a pod that has a routing-sidecar container is left alone by
# the webhook.
render_pod() {
  local node=$1 role dest
  role=$(role_of "$node")
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $node
  namespace: $FABRIC_NS
  labels:
    app.kubernetes.io/name: fabric-e2e
    routing.fabric.dev/sidecar: "true"
    routing.fabric.dev/node-id: $node
    role: $role
  annotations:
EOF
  if [ "$INJECTION" = webhook ]; then
    echo "    routing.fabric.dev/originate: \"$(originates "$node" | tr ' ' ',')\""
  else
    echo "    routing.fabric.dev/bootstrap-config: |"
    echo "      nodeId: $node"
    echo "      version: bootstrap"
    echo "      originate:"
    for dest in $(originates "$node"); do echo "        - destination: $dest"; done
    echo "    routing.fabric.dev/operator-ca: |"
    sed 's/^/      /' "$WORK/operator-ca.pem"
  fi
  cat <<EOF
spec:
  terminationGracePeriodSeconds: 10
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    fsGroup: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: app
      image: $APP_IMAGE
      imagePullPolicy: IfNotPresent
      resources:
        requests: {cpu: 5m, memory: 8Mi}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
EOF
  [ "$INJECTION" = manual ] || return 0
  cat <<EOF
    - name: routing-sidecar
      image: $SIDECAR_IMAGE
      imagePullPolicy: Never
      args:
        - run
        - --config
        - /var/run/secrets/fabric/bootstrap.yaml
        - --state-dir
        - /var/lib/fabric
        - --listen
        - 0.0.0.0:7443
        - --api
        - 127.0.0.1:7480
        - --operator
        - $OPERATOR_URL
        - --operator-token-file
        - /var/run/secrets/fabric/token
        - --operator-ca
        - /var/run/secrets/fabric/ca.crt
        - --advertise-address
        - \$(POD_IP)
        - --log-format
        - json
      env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: RUST_LOG
          value: info
      ports:
        - {name: fabric-peer, containerPort: 7443, protocol: TCP}
      resources:
        requests: {cpu: 10m, memory: 32Mi}
        limits: {memory: 128Mi}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        capabilities: {drop: [ALL]}
        seccompProfile: {type: RuntimeDefault}
      volumeMounts:
        - {name: routing-sidecar-config, mountPath: /var/run/secrets/fabric, readOnly: true}
        - {name: routing-sidecar-state, mountPath: /var/lib/fabric}
  volumes:
    - name: routing-sidecar-config
      projected:
        sources:
          - serviceAccountToken: {audience: $TOKEN_AUDIENCE, expirationSeconds: 3600, path: token}
          - downwardAPI:
              items:
                - path: bootstrap.yaml
                  fieldRef: {fieldPath: "metadata.annotations['routing.fabric.dev/bootstrap-config']"}
                - path: ca.crt
                  fieldRef: {fieldPath: "metadata.annotations['routing.fabric.dev/operator-ca']"}
    - name: routing-sidecar-state
      emptyDir: {sizeLimit: 64Mi}
EOF
}

# create_pod NODE: one attempt (the webhook may refuse connections for a
# moment after the operator became ready).
create_pod() {
  local out
  out=$(render_pod "$1" | kubectl create -f - 2>&1) && { echo "$out"; return 0; }
  case $out in *AlreadyExists*) echo "$out"; return 0 ;; esac
  echo "kubectl create pod $1: $out"
  return 1
}

# start_node NODE: create the pod, wait until it is Ready, check the
# sidecar is in it (injected or written here), forward its API.
start_node() {
  local node=$1 out container image port
  wait_until 2 "pod $node to be admitted" create_pod "$node"
  if ! out=$(kubectl -n "$FABRIC_NS" wait --for=condition=Ready "pod/$node" --timeout="${TIMEOUT}s" 2>&1); then
    fail "pod $node not Ready within ${TIMEOUT} s: $out"
  fi
  out=$(inspect_sidecar "$node") || fail "$out$([ "$INJECTION" = webhook ] && echo ": the injection webhook did not inject it (is the pod labelled routing.fabric.dev/sidecar=true? see the operator logs)")"
  read -r container image port <<<"$out"
  [ "$image" = "$SIDECAR_IMAGE" ] ||
    fail "pod $node runs the sidecar image $image, expected $SIDECAR_IMAGE (the chart's sidecar.image does not reach the webhook?)"
  out=$(pf_start "sidecar-$node" "$FABRIC_NS" "pod/$node" "$port") || fail "sidecar API of $node: $out"
  log "$node: Ready, container $container ($image), API 127.0.0.1:$port in the pod -> 127.0.0.1:$(cat "$PF_DIR/sidecar-$node.port") here"
}

# peer_address POD: what the operator tells neighbors to dial: the
# routing.fabric.dev/peer-address annotation, else <podIP>:<peer-port
# annotation, default 7443> (docs/operator.md, "Cluster mode").
peer_address() {
  local line ip address port
  line=$(kubectl -n "$FABRIC_NS" get pod "$1" -o jsonpath='{.status.podIP}|{.metadata.annotations.routing\.fabric\.dev/peer-address}|{.metadata.annotations.routing\.fabric\.dev/peer-port}') || return 1
  IFS='|' read -r ip address port <<<"$line"
  if [ -n "$address" ]; then echo "$address"; else echo "$ip:${port:-7443}"; fi
}

# ================================================================ setup

section "prerequisites"
need docker "the Docker engine builds the images and runs kind"
need kind "https://kind.sigs.k8s.io"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need curl "to read the operator's and the sidecars' HTTP APIs"
need base64 "coreutils"
docker info >/dev/null 2>&1 || { echo "e2e/run.sh: docker info failed: no Docker engine" >&2; exit 2; }
case $INJECTION in auto | webhook | manual) ;; *) echo "e2e/run.sh: E2E_INJECTION must be auto, webhook or manual" >&2; exit 2 ;; esac
if [ -n "${HELM:-}" ]; then
  HELM_BIN=$HELM
elif HELM_BIN=$(bash "$ROOT/scripts/install-helm.sh" 2>"$WORK/install-helm.log" | tail -n 1) && [ -x "$HELM_BIN" ]; then
  :
elif command -v helm >/dev/null 2>&1; then
  HELM_BIN=$(command -v helm)
else
  cat "$WORK/install-helm.log" >&2
  echo "e2e/run.sh: no helm: scripts/install-helm.sh failed and there is none on PATH (set HELM=/path/to/helm)" >&2
  exit 2
fi
log "docker $(docker version --format '{{.Server.Version}}' 2>/dev/null), $(kind version), kubectl $(kubectl version --client -o yaml 2>/dev/null | sed -n 's/^ *gitVersion: //p' | head -n 1), helm $("$HELM_BIN" version --short 2>/dev/null)"
log "cluster $CLUSTER, images $OPERATOR_IMAGE $SIDECAR_IMAGE, timeout ${TIMEOUT} s per wait, work dir $WORK"

section "images (docker build -f images/Dockerfile --target ...)"
if [ "${E2E_SKIP_BUILD:-0}" = 1 ]; then
  for image in "$OPERATOR_IMAGE" "$SIDECAR_IMAGE"; do
    docker image inspect "$image" >/dev/null 2>&1 || fail "E2E_SKIP_BUILD=1 but there is no image $image"
  done
  log "using the existing images (E2E_SKIP_BUILD=1)"
else
  BUILD_FLAGS=()
  # docker build through buildx (the default) attaches provenance
  # attestations, which `kind load docker-image` cannot always import.
  if docker buildx version >/dev/null 2>&1; then BUILD_FLAGS+=(--provenance=false); fi
  for target in fabric-operator routing-sidecar; do
    image="$target:$TAG"
    log "building $image (log: $WORK/build-$target.log)"
    if ! DOCKER_BUILDKIT=1 docker build "${BUILD_FLAGS[@]}" -f images/Dockerfile --target "$target" -t "$image" . \
      >"$WORK/build-$target.log" 2>&1; then
      tail -n 60 "$WORK/build-$target.log" >&2
      fail "docker build --target $target failed (whole log: $WORK/build-$target.log)"
    fi
    BUILT_IMAGES=1
  done
fi

section "kind cluster $CLUSTER"
KIND_FLAGS=(--name "$CLUSTER" --config "$E2E_DIR/kind-config.yaml" --kubeconfig "$KUBECONFIG" --wait "${TIMEOUT}s")
[ -z "${E2E_KIND_NODE_IMAGE:-}" ] || KIND_FLAGS+=(--image "$E2E_KIND_NODE_IMAGE")
CLUSTER_CREATED=1 # from here on, the cluster (even half-created) is deleted on exit
kind create cluster "${KIND_FLAGS[@]}" >"$WORK/kind-create.log" 2>&1 ||
  { cat "$WORK/kind-create.log" >&2; fail "kind create cluster failed"; }
log "Kubernetes $(kubectl version -o yaml 2>/dev/null | sed -n '/serverVersion/,$ s/^ *gitVersion: //p' | head -n 1), nodes: $(kubectl get nodes -o jsonpath='{.items[*].metadata.name}')"
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$SIDECAR_IMAGE" >"$WORK/kind-load.log" 2>&1 ||
  { cat "$WORK/kind-load.log" >&2; fail "kind load docker-image $OPERATOR_IMAGE $SIDECAR_IMAGE failed"; }
log "loaded $OPERATOR_IMAGE and $SIDECAR_IMAGE into every node"

section "operator: helm install $RELEASE charts/fabric-routing -n $OPERATOR_NS"
# The Secret Role for namespace fabric (rbac.secrets.namespaces) needs it.
kubectl create namespace "$FABRIC_NS" >/dev/null
HELM_ARGS=(--namespace "$OPERATOR_NS" -f "$E2E_DIR/values.yaml" --set "operator.image.tag=$TAG" --set "sidecar.image.tag=$TAG")
RENDERED=$("$HELM_BIN" template "$RELEASE" "$ROOT/charts/fabric-routing" "${HELM_ARGS[@]}" 2>&1) ||
  fail "helm template failed: $RENDERED"
CHART_WEBHOOK=0
grep -q '^kind: MutatingWebhookConfiguration' <<<"$RENDERED" && CHART_WEBHOOK=1
BINARY_WEBHOOK=0
OPERATOR_HELP=$(docker run --rm "$OPERATOR_IMAGE" run --help 2>&1) || fail "docker run $OPERATOR_IMAGE run --help failed: $OPERATOR_HELP"
grep -q -- '--no-webhook' <<<"$OPERATOR_HELP" && BINARY_WEBHOOK=1
if [ "$INJECTION" = auto ]; then
  if [ "$CHART_WEBHOOK" = 1 ]; then INJECTION=webhook; else INJECTION=manual; fi
fi
if [ "$INJECTION" = webhook ] && [ "$CHART_WEBHOOK" = 0 ]; then
  fail "E2E_INJECTION=webhook, but charts/fabric-routing renders no MutatingWebhookConfiguration"
fi
if [ "$INJECTION" = manual ] && [ "$BINARY_WEBHOOK" = 1 ] && ! grep -qE -- '- "?--(no-webhook|sidecar-operator-url)' <<<"$RENDERED"; then
  # The binary serves the webhook by default and then needs
  # --sidecar-operator-url, which a chart without the webhook does not pass.
  HELM_ARGS+=(--set 'operator.extraArgs[0]=--no-webhook')
  log "the operator has the injection webhook, the chart does not wire it: running it with --no-webhook"
fi
log "sidecar injection: $INJECTION (chart webhook: $CHART_WEBHOOK, operator webhook: $BINARY_WEBHOOK)"
"$HELM_BIN" install "$RELEASE" "$ROOT/charts/fabric-routing" --create-namespace "${HELM_ARGS[@]}" \
  --timeout "${TIMEOUT}s" >"$WORK/helm-install.log" 2>&1 ||
  { cat "$WORK/helm-install.log" >&2; fail "helm install failed"; }
out=$(kubectl -n "$OPERATOR_NS" rollout status "deployment/$FULLNAME" --timeout="${TIMEOUT}s" 2>&1) ||
  fail "the operator Deployment did not become ready within ${TIMEOUT} s: $out"
wait_until 1 "the operator to hold the leader-election Lease" lease_held
ok "operator ready, leader $WAIT_OUTPUT (Lease fabric-operator in $OPERATOR_NS)"
out=$(pf_start operator "$OPERATOR_NS" "svc/$FULLNAME" 8080) || fail "operator HTTP API: $out"
log "operator HTTP API (/status, /sidecars, /metrics) on 127.0.0.1:$(cat "$PF_DIR/operator.port")"
if [ "$INJECTION" = manual ]; then
  operator_ca >"$WORK/operator-ca.pem" || fail "cannot read ca.crt of Secret $OPERATOR_NS/$FULLNAME-tls"
  grep -q 'BEGIN CERTIFICATE' "$WORK/operator-ca.pem" || fail "Secret $OPERATOR_NS/$FULLNAME-tls has no ca.crt"
fi

section "fabric: RouteKeys, RoutePolicy, NeighborPolicies (e2e/manifests), then the pods"
kubectl apply -f "$E2E_DIR/manifests/route-keys.yaml" -f "$E2E_DIR/manifests/route-policy.yaml" \
  -f "$E2E_DIR/manifests/neighbor-policies.yaml" >/dev/null
# Keys first, as a real rollout would: a key activates once every connected
# sidecar trusts it (with none connected: at once), so the sidecars' first
# configs already name their signing keys and nothing goes out unsigned.
for key in $ROUTE_KEYS; do
  wait_until 1 "RouteKey $FABRIC_NS/$key to be accepted with an active key" route_key_ready "$key"
  log "RouteKey $key: active key $WAIT_OUTPUT"
done
for node in $NODES; do start_node "$node"; done

# ================================================================ check 1

section "check 1: every CR Applied N/N, every route signed and converged"
T_CONVERGE=$(now_ms)
for entry in $APPLIED_OBJECTS; do
  wait_until 1 "${entry%%:*} to be Applied ${entry#*:}/${entry#*:}" applied "${entry%%:*}" "${entry#*:}"
  log "$WAIT_OUTPUT"
done
for key in $ROUTE_KEYS; do
  wait_until 1 "RouteKey $key to be accepted with an active key" route_key_ready "$key"
done
# shellcheck disable=SC2086
wait_until 0.5 "every sidecar to have a signed route to every destination, the edges via core-1" routed core-1 $NODES
ok "check 1: Applied N/N everywhere, routes signed and converged ($(seconds_since "$T_CONVERGE") s after the last pod was Ready)"
# shellcheck disable=SC2086
next_hops $NODES

# ================================================================ check 2

section "check 2: deleting pod core-1 reroutes the edges through core-2"
pf_stop sidecar-core-1
T_DELETE=$(now_ms)
kubectl -n "$FABRIC_NS" delete pod core-1 --wait=false >/dev/null
deadline=$((T_DELETE + TIMEOUT * 1000))
last='(no observation yet)'
while :; do
  if out=$(routed core-2 edge-a edge-b 2>&1); then break; fi
  last=$out
  if [ "$(now_ms)" -ge "$deadline" ]; then
    fail "the edges did not reroute through core-2 within ${TIMEOUT} s of deleting core-1; last observation: $last (a sidecar run with --announce-restart makes its peers keep its routes as stale for timers.gracefulRestartWindow, 2m by default)"
  fi
  sleep 0.1
done
REROUTE_MS=$(($(now_ms) - T_DELETE))
REROUTE="$((REROUTE_MS / 1000)).$((REROUTE_MS % 1000 / 100))"
next_hops edge-a edge-b
[ "$REROUTE_MS" -le $((CONVERGENCE_TARGET * 1000)) ] ||
  fail "the edges rerouted through core-2 ${REROUTE} s after core-1 was deleted, above the target of ${CONVERGENCE_TARGET} s (E2E_CONVERGENCE_TARGET)"
out=$(kubectl -n "$FABRIC_NS" wait --for=delete pod/core-1 --timeout="${TIMEOUT}s" 2>&1) ||
  fail "pod core-1 still exists ${TIMEOUT} s after its deletion: $out"
wait_until 0.5 "core-2 to keep a signed route to every destination" routed "" core-2
ok "check 2: edges rerouted through core-2 in ${REROUTE} s (target ${CONVERGENCE_TARGET} s), measured from the delete request"

# ================================================================ check 3

section "check 3: a spoofed core-1 (rogue pod, its own key) is rejected"
# The real core-1 is gone; its RouteKey still is trusted everywhere, and the
# edges still list core-1 as a neighbor (without an address: it may dial
# in). The rogue is not labelled for injection, so the operator neither
# knows it nor would give it core-1's key; it runs routing-sidecar with a
# config that claims node id core-1, dials both edges, originates payments
# and e2e-hijack, and signs with a key it generated under core-1's current
# key id: the signatures cannot verify.
ROGUE_KEY_ID=$(route_key_ready core-1) || fail "RouteKey core-1: $ROGUE_KEY_ID"
docker run --rm "$SIDECAR_IMAGE" keygen --key-id "$ROGUE_KEY_ID" >"$WORK/rogue-key.json" 2>"$WORK/rogue-keygen.log" ||
  fail "routing-sidecar keygen in $SIDECAR_IMAGE failed: $(cat "$WORK/rogue-keygen.log")"
EDGE_A_PEER=$(peer_address edge-a) || fail "no peer address for edge-a"
EDGE_B_PEER=$(peer_address edge-b) || fail "no peer address for edge-b"
cat >"$WORK/rogue.yaml" <<EOF
nodeId: core-1
version: rogue
neighbors:
  - {id: edge-a, address: "$EDGE_A_PEER"}
  - {id: edge-b, address: "$EDGE_B_PEER"}
originate:
  - destination: payments
  - destination: e2e-hijack
EOF
kubectl -n "$FABRIC_NS" create secret generic "$ROGUE" --from-file=sidecar.yaml="$WORK/rogue.yaml" \
  --from-file=signing-key.json="$WORK/rogue-key.json" >/dev/null
for node in edge-a edge-b; do
  rejects "$node" >"$WORK/rejects/rogue-before-$node" || fail "$(cat "$WORK/rejects/rogue-before-$node")"
  tls_refusals "$node" >"$WORK/rejects/rogue-tls-before-$node" || fail "$(cat "$WORK/rejects/rogue-tls-before-$node")"
done
kubectl -n "$FABRIC_NS" create -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $ROGUE
  namespace: $FABRIC_NS
  labels: {app.kubernetes.io/name: fabric-e2e-rogue}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 2
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    fsGroup: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: rogue
      image: $SIDECAR_IMAGE
      imagePullPolicy: Never
      args: [run, --config, /etc/rogue/sidecar.yaml, --signing-key, /etc/rogue/signing-key.json,
             --state-dir, /var/lib/fabric, --listen, "0.0.0.0:7443", --api, "127.0.0.1:7480"]
      env:
        - {name: RUST_LOG, value: info}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
      volumeMounts:
        - {name: rogue, mountPath: /etc/rogue, readOnly: true}
        - {name: state, mountPath: /var/lib/fabric}
  volumes:
    - name: rogue
      secret: {secretName: $ROGUE}
    - name: state
      emptyDir: {}
EOF
out=$(kubectl -n "$FABRIC_NS" wait --for=condition=Ready "pod/$ROGUE" --timeout="${TIMEOUT}s" 2>&1) ||
  fail "the rogue pod did not start within ${TIMEOUT} s: $out"
log "rogue $ROGUE runs as core-1 with a forged key $ROGUE_KEY_ID, dialing edge-a ($EDGE_A_PEER) and edge-b ($EDGE_B_PEER)"

spoof_rejected() {
  local node changes signature tls seen='' report=''
  for node in edge-a edge-b; do
    rejects "$node" >"$WORK/rejects/rogue-now-$node" || { cat "$WORK/rejects/rogue-now-$node"; return 1; }
    signature=$(signature_changes "$WORK/rejects/rogue-before-$node" "$WORK/rejects/rogue-now-$node" | tr '\n' ' ')
    changes=$(reject_changes "$WORK/rejects/rogue-before-$node" "$WORK/rejects/rogue-now-$node" | tr '\n' ' ')
    [ -z "$signature" ] || seen="$seen $node: ${signature% };"
    tls=$(tls_refusals "$node") || { echo "$tls"; return 1; }
    [ "$tls" -le "$(cat "$WORK/rejects/rogue-tls-before-$node")" ] || seen="$seen $node: $tls TLS refusals;"
    report="$report $node: ${changes:-none};"
  done
  if [ -n "$seen" ]; then
    echo "${seen# }"
    return 0
  fi
  echo "no signature reject or TLS refusal on edge-a or edge-b yet (reject counter changes:$report); the rogue's last log lines: $(kubectl -n "$FABRIC_NS" logs "$ROGUE" --tail=3 2>&1 | tr '\n' ' ')"
  return 1
}
wait_until 0.5 "a signature reject (fabric_announcement_rejects_total) or TLS refusal (fabric_session_ends_total) of edge-a or edge-b to rise" spoof_rejected
SPOOF_REJECTS=$WAIT_OUTPUT
sleep 2
# Nothing of the rogue is used: the edges still route everything through
# core-2, and nobody has a route to what only the rogue announced.
out=$(routed core-2 edge-a edge-b core-2) || fail "while the rogue runs: $out"
for node in edge-a edge-b core-2; do
  hijack=$(routes_of "$node" e2e-hijack) || fail "$hijack"
  case $hijack in "e2e-hijack - "*) ;; *) fail "$node has a route to e2e-hijack, which only the rogue announced: $hijack" ;; esac
done
sessions=$(kubectl -n "$FABRIC_NS" logs "$ROGUE" 2>/dev/null | grep -c 'session established' || true)
ok "check 3: the rogue's announcements were rejected ($SPOOF_REJECTS) and none is used (rogue sessions established: $sessions)"
kubectl -n "$FABRIC_NS" delete pod "$ROGUE" --wait=true --timeout="${TIMEOUT}s" >/dev/null 2>&1 ||
  fail "the rogue pod could not be deleted within ${TIMEOUT} s"
kubectl -n "$FABRIC_NS" delete secret "$ROGUE" >/dev/null

section "core-1 comes back"
start_node core-1
for entry in $APPLIED_OBJECTS; do
  wait_until 1 "${entry%%:*} to be Applied ${entry#*:}/${entry#*:} again" applied "${entry%%:*}" "${entry#*:}"
done
# shellcheck disable=SC2086
wait_until 0.5 "every route signed and the edges back on core-1" routed core-1 $NODES
ok "core-1 rejoined: Applied N/N, the edges route through core-1 again"

# ================================================================ check 4

section "check 4: key rotation (every 30 s, overlap 10 s) with zero rejects"
IDENTITIES_BEFORE=$(pod_identities)
for node in $NODES; do
  rejects "$node" >"$WORK/rejects/rotation-before-$node" || fail "$(cat "$WORK/rejects/rotation-before-$node")"
done
# Read after the counters: every rotation seen from here on happened after
# that snapshot.
for key in $ROUTE_KEYS; do
  route_key_ready "$key" >"$WORK/key-before-$key" || fail "$(cat "$WORK/key-before-$key")"
done
log "active keys: $(for key in $ROUTE_KEYS; do printf '%s=%s ' "$key" "$(cat "$WORK/key-before-$key")"; done)"

keys_rotated() {
  local key before line active next pending
  for key in $ROUTE_KEYS; do
    before=$(cat "$WORK/key-before-$key")
    line=$(kubectl -n "$FABRIC_NS" get routekeys "$key" -o jsonpath='{.status.activeKeyId}|{.status.nextRotation}|{.status.keys[?(@.state=="Pending")].keyId}') ||
      { echo "kubectl get routekeys $key failed"; return 1; }
    IFS='|' read -r active next pending <<<"$line"
    if [ -z "$active" ] || [ "$active" = "$before" ]; then
      echo "RouteKey $key still signs with ${active:-nothing} (next rotation ${next:-?}, pending key ${pending:-none})"
      return 1
    fi
  done
  echo "rotated"
}
keys_retired() {
  local key before listed
  for key in $ROUTE_KEYS; do
    before=$(cat "$WORK/key-before-$key")
    listed=$(kubectl -n "$FABRIC_NS" get routekeys "$key" -o jsonpath='{range .status.keys[*]}{.keyId}:{.state}:{.validUntil} {end}') ||
      { echo "kubectl get routekeys $key failed"; return 1; }
    case " $listed" in
      *" $before:"*) echo "RouteKey $key still lists its previous key $before (keys: $listed)"; return 1 ;;
    esac
  done
  echo "retired"
}
T_ROTATION=$(now_ms)
wait_until 1 "every RouteKey to activate a new signing key" keys_rotated
log "every node signs with a new key after $(seconds_since "$T_ROTATION") s"
wait_until 1 "every RouteKey to retire the key it had before (validUntil = the owner's switch + overlap)" keys_retired
log "every previous key retired after $(seconds_since "$T_ROTATION") s"
sleep 2
for node in $NODES; do
  rejects "$node" >"$WORK/rejects/rotation-after-$node" || fail "$(cat "$WORK/rejects/rotation-after-$node")"
done
IDENTITIES_AFTER=$(pod_identities)
[ "$IDENTITIES_BEFORE" = "$IDENTITIES_AFTER" ] ||
  fail "a fabric pod was re-created or a container restarted during the rotation, so its counters restarted (before: $IDENTITIES_BEFORE; after: $IDENTITIES_AFTER)"
moved=''
for node in $NODES; do
  changes=$(reject_changes "$WORK/rejects/rotation-before-$node" "$WORK/rejects/rotation-after-$node" | tr '\n' ' ')
  [ -z "$changes" ] || moved="$moved $node: $changes;"
done
[ -z "$moved" ] ||
  fail "reject counters moved during the key rotation (fabric_announcement_rejects_total):$moved"
# shellcheck disable=SC2086
out=$(routed core-1 $NODES) || fail "after the rotation: $out"
ok "check 4: every key rotated and the previous one retired in $(seconds_since "$T_ROTATION") s; no reject counter of any sidecar moved; routes still signed"
for key in $ROUTE_KEYS; do log "  $key: $(cat "$WORK/key-before-$key") -> $(kubectl -n "$FABRIC_NS" get routekeys "$key" -o jsonpath='{.status.activeKeyId}')"; done

# ================================================================ check 5

section "check 5: a NeighborPolicy edit (core-1 cost 1 -> 10) moves the edges to core-2"
GEN_BEFORE=$(kubectl -n "$FABRIC_NS" get neighborpolicies edge-uplinks -o jsonpath='{.metadata.generation}')
log "before the edit:"
next_hops edge-a edge-b
T_EDIT=$(now_ms)
kubectl apply -f "$E2E_DIR/manifests/edit/edge-uplinks.yaml" >/dev/null
GEN_AFTER=$(kubectl -n "$FABRIC_NS" get neighborpolicies edge-uplinks -o jsonpath='{.metadata.generation}')
[ "$GEN_AFTER" -gt "$GEN_BEFORE" ] ||
  fail "kubectl apply of e2e/manifests/edit/edge-uplinks.yaml left generation $GEN_BEFORE unchanged"
wait_until 0.5 "NeighborPolicy edge-uplinks generation $GEN_AFTER to be Applied 2/2" applied neighborpolicies/edge-uplinks 2
log "$WAIT_OUTPUT ($(seconds_since "$T_EDIT") s after the apply)"
wait_until 0.5 "the edges to route everything through core-2" routed core-2 edge-a edge-b
log "after the edit:"
next_hops edge-a edge-b
for entry in $APPLIED_OBJECTS; do
  out=$(applied "${entry%%:*}" "${entry#*:}") || fail "after the edit: $out"
done
ok "check 5: generation $GEN_BEFORE -> $GEN_AFTER Applied 2/2, the edges' next hops moved from core-1 to core-2 in $(seconds_since "$T_EDIT") s"

# ================================================================ check 6 (opt-in)

# A pod that is not a fabric sidecar (not labelled, so not watched) but has
# a projected token for the operator's audience asks the operator for node
# core-1's config: the operator must refuse it, or it hands out core-1's
# private signing key. Opt-in (E2E_CHECK_OPERATOR_SPOOF=1) and last: a
# served thief would disturb the fabric (it peers as core-1 with a valid
# key); the operator pushes only to the pod a node id's config was compiled
# for (docs/security.md, "What is not protected", 2).
if [ "${E2E_CHECK_OPERATOR_SPOOF:-0}" = 1 ]; then
  section "check 6: the operator refuses a non-sidecar pod that claims node id core-1"
  THIEF=thief-core-1
  operator_ca >"$WORK/thief-ca.pem" || fail "cannot read ca.crt of Secret $OPERATOR_NS/$FULLNAME-tls"
  printf 'nodeId: core-1\nversion: thief\n' >"$WORK/thief.yaml"
  kubectl -n "$FABRIC_NS" create secret generic "$THIEF" --from-file=sidecar.yaml="$WORK/thief.yaml" \
    --from-file=ca.crt="$WORK/thief-ca.pem" >/dev/null
  kubectl -n "$FABRIC_NS" create -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $THIEF
  namespace: $FABRIC_NS
  labels: {app.kubernetes.io/name: fabric-e2e-thief}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 2
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: thief
      image: $SIDECAR_IMAGE
      imagePullPolicy: Never
      args: [run, --config, /etc/thief/sidecar.yaml, --state-dir, /var/lib/fabric, --listen, "0.0.0.0:7443",
             --api, "127.0.0.1:7480", --operator, "$OPERATOR_URL", --operator-token-file, /var/run/secrets/fabric/token,
             --operator-ca, /etc/thief/ca.crt]
      env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: RUST_LOG, value: info}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts:
        - {name: thief, mountPath: /etc/thief, readOnly: true}
        - {name: token, mountPath: /var/run/secrets/fabric, readOnly: true}
        - {name: state, mountPath: /var/lib/fabric}
  volumes:
    - name: thief
      secret: {secretName: $THIEF}
    - name: token
      projected:
        sources:
          - serviceAccountToken: {audience: $TOKEN_AUDIENCE, expirationSeconds: 3600, path: token}
    - name: state
      emptyDir: {}
EOF
  out=$(kubectl -n "$FABRIC_NS" wait --for=condition=Ready "pod/$THIEF" --timeout="${TIMEOUT}s" 2>&1) ||
    fail "the thief pod did not start within ${TIMEOUT} s: $out"
  # Refused: at least two failed connection attempts over 10 s and never a
  # config. Served: "operator config applied" (and "signing key switched").
  deadline=$(($(now_ms) + TIMEOUT * 1000))
  T_THIEF=$(now_ms)
  while :; do
    thief_log=$(kubectl -n "$FABRIC_NS" logs "$THIEF" 2>&1 || true)
    if grep -qE 'operator config applied|signing key switched' <<<"$thief_log"; then
      fail "SECURITY: the operator served node core-1's config to pod $FABRIC_NS/$THIEF, which is not a fabric sidecar (not labelled routing.fabric.dev/sidecar=true): $(grep -E 'operator config applied|signing key switched' <<<"$thief_log" | head -n 2 | tr '\n' ' ')"
    fi
    refusals=$(grep -c 'operator connection failed' <<<"$thief_log" || true)
    if [ "$refusals" -ge 2 ] && [ "$(($(now_ms) - T_THIEF))" -ge 10000 ]; then break; fi
    [ "$(now_ms)" -lt "$deadline" ] ||
      fail "no verdict on the thief within ${TIMEOUT} s (refusals seen: $refusals); its log: $(tail -n 5 <<<"$thief_log" | tr '\n' ' ')"
    sleep 1
  done
  ok "check 6: the operator refused $FABRIC_NS/$THIEF ($(grep 'operator connection failed' <<<"$thief_log" | tail -n 1 | sed 's/.*error[=:] *//' | cut -c1-160))"
  kubectl -n "$FABRIC_NS" delete pod "$THIEF" --wait=true --timeout="${TIMEOUT}s" >/dev/null 2>&1 || true
  kubectl -n "$FABRIC_NS" delete secret "$THIEF" >/dev/null 2>&1 || true
fi

# ================================================================ done

section "summary"
rotations=$(api_get operator /metrics 2>/dev/null | awk '/^fabric_operator_key_rotations_total / { print $2 }') || true
log "operator: ${rotations:-?} key rotations; sidecar injection: $INJECTION"
log "reroute after deleting core-1: ${REROUTE} s (target ${CONVERGENCE_TARGET} s)"
if [ "${E2E_CHECK_OPERATOR_SPOOF:-0}" = 1 ]; then CHECKS=6; else CHECKS=5; fi
ok "all $CHECKS checks passed in $(seconds_since "$T0") s"
