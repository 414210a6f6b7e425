#!/usr/bin/env bash
# The README's one-line demo: the operator in local mode (docs/operator.md,
# "Local mode") and four real sidecars on 127.0.0.1, with signed routing and
# one policy edit. The fabric and the edit are explained in
# examples/demo/README.md.
#
#   bash scripts/demo.sh           # run it, print what happens, stop everything
#   bash scripts/demo.sh --keep    # leave the fabric running and print its addresses
#   bash scripts/demo.sh --ci      # quieter, no colors, log tails on failure (.ci/run)
#   bash scripts/demo.sh --build   # run `cargo build` first even if the binaries exist
#
# Steps: build the two debug binaries if missing; copy examples/demo/manifests
# to a temporary folder; start `fabric-operator run --manifests` on it
# (plaintext, a generated static token, ports chosen by the OS); wait until
# its four signing keys are active; start edge-a, core-1, core-2 and edge-b
# (`routing-sidecar run --operator`), each with its bootstrap config from
# examples/demo/bootstrap; wait until every sidecar is SYNCED and the routes
# converged, signed, with both edges routing through core-1; apply the edit
# (examples/demo/edit/edge-uplinks.yaml drains core-1); wait until the new
# versions are SYNCED and both edges route through core-2; print the
# NeighborPolicy's Applied condition. Any expectation that does not hold
# exits 1. Every wait is bounded (DEMO_TIMEOUT, default 30 s per wait); every
# process started here is stopped on exit, whatever happens (unless --keep
# and the demo succeeded).
#
# Needs bash, python3 (JSON) and curl (falls back to python3's urllib).
set -euo pipefail

usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

CI_MODE=0 KEEP=0 BUILD=0
for arg in "$@"; do
  case $arg in
    --ci) CI_MODE=1 ;;
    --keep) KEEP=1 ;;
    --build) BUILD=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "${CARGO_TARGET_DIR:-}" ] && [ "${CARGO_TARGET_DIR#/}" = "$CARGO_TARGET_DIR" ]; then
  export CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR"
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DEMO="$ROOT/examples/demo"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
OPERATOR_BIN="$BIN_DIR/fabric-operator"
SIDECAR_BIN="$BIN_DIR/routing-sidecar"
TIMEOUT=${DEMO_TIMEOUT:-30}
NODES="edge-a core-1 core-2 edge-b"
EDGES="edge-a edge-b"
EDITED_OBJECT="NeighborPolicy fabric/edge-uplinks"
export RUST_LOG="${RUST_LOG:-info}"
# Plain text logs in the log files (tracing's ANSI colors otherwise).
CHILD_ENV="NO_COLOR=1"

# ---------------------------------------------------------------- output

if [ -t 1 ] && [ "$CI_MODE" = 0 ] && [ -z "${NO_COLOR:-}" ]; then
  BOLD=$'\033[1m' DIM=$'\033[2m' RED=$'\033[31m' GREEN=$'\033[32m' RESET=$'\033[0m'
else
  BOLD='' DIM='' RED='' GREEN='' RESET=''
fi
# Narrative: interactive runs only.
say() { if [ "$CI_MODE" = 0 ]; then printf '%s\n' "$*"; fi; }
step() {
  if [ "$CI_MODE" = 1 ]; then printf 'demo: %s\n' "$*"; else printf '\n%s== %s ==%s\n' "$BOLD" "$*" "$RESET"; fi
}
ok() { printf '%s%s%s\n' "$GREEN" "$*" "$RESET"; }

# Milliseconds since an arbitrary origin (bash 5's EPOCHREALTIME, else whole seconds).
now_ms() {
  if [ -n "${EPOCHREALTIME:-}" ]; then
    local t=${EPOCHREALTIME/[.,]/}
    echo $((10#$t / 1000))
  else
    echo $((SECONDS * 1000))
  fi
}
T0=$(now_ms)
elapsed() { # seconds since $1 (ms), one decimal
  local ms=$(($(now_ms) - $1))
  printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

DIR=''
PIDS=''
FAILED=0

die() {
  FAILED=1
  printf '%sdemo.sh: FAILED: %s%s\n' "$RED" "$*" "$RESET" >&2
  if [ -n "$DIR" ]; then
    printf 'demo.sh: logs: %s/operator.log and %s/<node>/sidecar.log\n' "$DIR" "$DIR" >&2
    if [ "$CI_MODE" = 1 ]; then
      local log
      for log in "$DIR/operator.log" "$DIR"/*/sidecar.log; do
        [ -f "$log" ] || continue
        printf '\n--- last lines of %s ---\n' "$log" >&2
        tail -n 25 "$log" >&2 || true
      done
    fi
  fi
  exit 1
}

# ---------------------------------------------------------------- processes

stop_all() {
  [ -n "$PIDS" ] || return 0
  local pid alive deadline
  for pid in $PIDS; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$(($(now_ms) + 5000))
  while :; do
    alive=''
    for pid in $PIDS; do
      if kill -0 "$pid" 2>/dev/null; then alive="$alive $pid"; fi
    done
    [ -n "$alive" ] || break
    if [ "$(now_ms)" -ge "$deadline" ]; then
      for pid in $alive; do kill -KILL "$pid" 2>/dev/null || true; done
      break
    fi
    sleep 0.1
  done
  PIDS=''
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$KEEP" = 1 ] && [ "$rc" = 0 ] && [ "$FAILED" = 0 ]; then
    exit 0
  fi
  stop_all
  if [ -n "$DIR" ]; then
    if [ "$rc" = 0 ] && [ "$FAILED" = 0 ]; then
      rm -rf "$DIR"
    else
      printf 'demo.sh: processes stopped; logs kept in %s\n' "$DIR" >&2
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits (bounded) for the JSON `listening` line a process prints on stdout.
wait_listening() { # out-file pid name log
  local deadline line
  deadline=$(($(now_ms) + TIMEOUT * 1000))
  while :; do
    line=$(head -n 1 "$1" 2>/dev/null || true)
    case $line in *'"listening"'*'}') echo "$line"; return 0 ;; esac
    kill -0 "$2" 2>/dev/null || die "$3 exited before listening (see $4)"
    [ "$(now_ms)" -lt "$deadline" ] || die "$3 printed no listening line within ${TIMEOUT} s (see $4)"
    sleep 0.1
  done
}

# ---------------------------------------------------------------- tools

command -v python3 >/dev/null 2>&1 || die "python3 is needed (to read the JSON answers)"
# The interpreter itself, not a version manager's shim: it runs once per poll.
PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || PYTHON=python3
[ -x "$PYTHON" ] || PYTHON=python3
# http_get DIR FILE URL [FILE URL ...]: each URL into DIR/FILE, one process
# for all; fails if any request fails. Local addresses: never via a proxy.
if command -v curl >/dev/null 2>&1; then
  http_get() {
    local dir=$1 args=()
    shift
    while [ $# -ge 2 ]; do args+=(-o "$dir/$1" "$2"); shift 2; done
    curl -fsS --fail-early --noproxy '*' --max-time 5 "${args[@]}"
  }
else
  http_get() {
    "$PYTHON" - "$@" <<'PY'
import os, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
args = sys.argv[2:]
for name, url in zip(args[::2], args[1::2]):
    body = opener.open(url, timeout=5).read()
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        f.write(body)
PY
  }
fi

# ---------------------------------------------------------------- binaries

if [ "$BUILD" = 1 ] || [ ! -x "$OPERATOR_BIN" ] || [ ! -x "$SIDECAR_BIN" ]; then
  step "building routing-sidecar and fabric-operator (debug)"
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (README)"
  cargo build -p routing-sidecar -p operator --bins --locked || die "cargo build failed"
  T0=$(now_ms)
elif [ -n "$(find routing-sidecar operator -path "*/target" -prune -o -newer "$SIDECAR_BIN" -name '*.rs' -print 2>/dev/null | head -n 1)" ] ||
  [ -n "$(find routing-sidecar operator -path "*/target" -prune -o -newer "$OPERATOR_BIN" -name '*.rs' -print 2>/dev/null | head -n 1)" ]; then
  printf '%snote: sources are newer than %s; run with --build to rebuild%s\n' "$DIM" "$BIN_DIR" "$RESET"
fi

# ---------------------------------------------------------------- scratch folder

DIR=$(mktemp -d "${TMPDIR:-/tmp}/fabric-demo.XXXXXX")
umask 077
cp -R "$DEMO/manifests" "$DIR/manifests"
# A fresh static token for this run (the operator compares its hash).
"$PYTHON" -c 'import secrets; print(secrets.token_hex(24))' >"$DIR/token"

export DEMO_NODES="$NODES" DEMO_EDGES="$EDGES" DEMO_BOOTSTRAP="$DEMO/bootstrap"
HELPER="$DIR/helper.py"
cat >"$HELPER" <<'PY'
"""JSON side of scripts/demo.sh: checks the expected state, prints the tables."""
import json, os, re, sys

NODES = os.environ["DEMO_NODES"].split()
EDGES = os.environ["DEMO_EDGES"].split()


def origins():
    """Destinations each node originates, from its bootstrap config."""
    out = {}
    for node in NODES:
        with open(os.path.join(os.environ["DEMO_BOOTSTRAP"], node + ".yaml")) as f:
            out[node] = re.findall(r"^\s*-\s*destination:\s*(\S+)", f.read(), re.M)
    return out


def denied(destination):
    # examples/demo/manifests/route-policy.yaml: import deny ["scratch-*"]
    return destination.startswith("scratch-")


def load(snapshot, name):
    with open(os.path.join(snapshot, name)) as f:
        return json.load(f)


def routes(snapshot, node):
    return {r["destination"]: r for r in load(snapshot, f"routes-{node}.json")}


def sidecars(snapshot):
    return {s["nodeId"]: s for s in load(snapshot, "sidecars.json")}


def applied(status, obj):
    for c in (status.get("objects", {}).get(obj) or {}).get("conditions", []):
        if c.get("type") == "Applied":
            return c
    return {}


def keys_active(status):
    """Nodes whose operator-managed key is not active (empty: all are)."""
    missing = []
    for node in NODES:
        key = (status.get("keyRotation") or {}).get(f"fabric/{node}") or {}
        if key.get("error"):
            missing.append(f"{node}: key rotation error: {key['error']}")
        elif not key.get("activeKeyId"):
            missing.append(f"{node}: no active signing key yet ({key.get('waiting') or 'not published'})")
    return missing


def check(snapshot, via, before=None, obj=None):
    """What is not yet as expected (empty: all is)."""
    missing = []
    status = load(snapshot, "status.json")
    for issue in status.get("manifestIssues") or []:
        missing.append(f"manifest issue: {issue}")
    for problem in status.get("problems") or []:
        missing.append(f"problem: {problem}")
    known = sidecars(snapshot)
    old = sidecars(before) if before else {}
    for node in NODES:
        s = known.get(node)
        if s is None:
            missing.append(f"{node}: not registered")
            continue
        if s.get("sync") != "SYNCED" or not s.get("connected"):
            missing.append(f"{node}: {s.get('sync')}" + ("" if s.get("connected") else " (disconnected)"))
        if before and node in EDGES and s.get("currentVersion") == old.get(node, {}).get("currentVersion"):
            missing.append(f"{node}: still on version {s.get('currentVersion')}")
    missing += keys_active(status)
    if obj:
        c = applied(status, obj)
        if c.get("status") != "True":
            missing.append(f"{obj}: Applied={c.get('status')} {c.get('message')}")
    origin = origins()
    everything = sorted({d for ds in origin.values() for d in ds})
    for node in NODES:
        table = routes(snapshot, node)
        for dest in everything:
            route = table.get(dest)
            if dest in origin[node]:
                if route is None or not route.get("local"):
                    missing.append(f"{node}: own {dest} is not local")
            elif denied(dest):
                if route is not None:
                    missing.append(f"{node}: has a route to {dest}, which the RoutePolicy denies")
            elif route is None:
                missing.append(f"{node}: no route to {dest}")
            else:
                if not route.get("signed"):
                    missing.append(f"{node}: route to {dest} via {route['next_hop']} is unsigned")
                if node in EDGES and route.get("next_hop") != via:
                    missing.append(f"{node}: {dest} via {route.get('next_hop')}, expected via {via}")
    return missing


def table(snapshot, before=None):
    origin = origins()
    everything = sorted({d for ds in origin.values() for d in ds})
    for node in EDGES:
        now = routes(snapshot, node)
        was = routes(before, node) if before else {}
        local = [d for d in everything if d in origin[node]]
        print(f"  from {node}  (local: {', '.join(local)})")
        for dest in everything:
            if dest in origin[node]:
                continue
            route = now.get(dest)
            if route is None:
                why = "denied on import by RoutePolicy fabric/fabric-default" if denied(dest) else "?"
                print(f"    {dest:<10} {'-':<8} no route ({why})")
                continue
            path = " > ".join([node] + route.get("path", []))
            signed = "signed" if route.get("signed") else "UNSIGNED"
            line = f"    {dest:<10} {route['next_hop']:<8} {path:<28} cost {route['metrics']['cost']:<3} {signed}"
            old = was.get(dest)
            if old and old.get("next_hop") != route.get("next_hop"):
                line += f"   (was {old['next_hop']})"
            print(line)


SIGNATURE_REJECTS = ("unsigned", "unknown_key", "key_not_yet_valid", "key_expired", "bad_signature")


def rejects(snapshot, node):
    """(signature rejects, other rejects by reason) from the node's /stats."""
    counts = load(snapshot, f"stats-{node}.json").get("engine", {}).get("announcement_rejects_total") or {}
    signature = sum(n for reason, n in counts.items() if reason in SIGNATURE_REJECTS)
    return signature, {reason: n for reason, n in counts.items() if reason not in SIGNATURE_REJECTS}


def keys(snapshot):
    status = load(snapshot, "status.json")
    for node in NODES:
        key = (status.get("keyRotation") or {}).get(f"fabric/{node}") or {}
        stats = load(snapshot, f"stats-{node}.json").get("engine", {})
        signature, other = rejects(snapshot, node)
        other = ", ".join(f"{reason} {n}" for reason, n in sorted(other.items())) or "none"
        print(
            f"  {node:<7} key {key.get('activeKeyId')} ({', '.join(key.get('keys') or [])}); "
            f"signatures verified {stats.get('signatures_verified_total', 0)}, refused {signature}; "
            f"other rejects: {other}"
        )


def assert_edit(snapshot, before, obj):
    """After the edit: only the edges got a new version, one push each, Applied
    N/N, and no announcement was ever refused for its signature."""
    failed = []
    now, old = sidecars(snapshot), sidecars(before)
    for node in NODES:
        changed = now[node]["currentVersion"] != old[node]["currentVersion"]
        if changed != (node in EDGES):
            failed.append(f"{node}: version {old[node]['currentVersion']} -> {now[node]['currentVersion']}")
    pushes = load(snapshot, "status.json").get("pushes", 0) - load(before, "status.json").get("pushes", 0)
    if pushes != len(EDGES):
        failed.append(f"{pushes} pushes for the edit, expected {len(EDGES)} (one per edge)")
    status = load(snapshot, "status.json")
    c = applied(status, obj)
    entry = status["objects"][obj]
    n = len(EDGES)
    if (c.get("status"), c.get("message")) != ("True", f"{n}/{n} sidecars on current version"):
        failed.append(f"{obj}: Applied {c}")
    if (entry.get("selectedSidecars"), entry.get("appliedSidecars")) != (n, n):
        failed.append(f"{obj}: selected {entry.get('selectedSidecars')}, applied {entry.get('appliedSidecars')}")
    for node in NODES:
        signature, _ = rejects(snapshot, node)
        if signature:
            failed.append(f"{node}: {signature} announcement(s) refused for their signature")
    return failed


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "get":  # get KEY < json
        print(json.load(sys.stdin)[args[0]])
    elif cmd == "check":  # check SNAPSHOT VIA [BEFORE OBJECT]
        missing = check(*args)
        print("; ".join(missing[:6]) + (f" (+{len(missing) - 6} more)" if len(missing) > 6 else ""))
        sys.exit(1 if missing else 0)
    elif cmd == "keys-active":  # keys-active SNAPSHOT
        missing = keys_active(load(args[0], "status.json"))
        print("; ".join(missing))
        sys.exit(1 if missing else 0)
    elif cmd == "table":  # table SNAPSHOT [BEFORE]
        table(*args)
    elif cmd == "keys":  # keys SNAPSHOT
        keys(*args)
    elif cmd == "versions":  # versions SNAPSHOT
        for node, s in sorted(sidecars(args[0]).items()):
            print(f"  {node:<7} {s.get('sync'):<7} version {s.get('currentVersion')}")
    elif cmd == "applied":  # applied SNAPSHOT OBJECT
        c = applied(load(args[0], "status.json"), args[1])
        print(f"  {args[1]}: Applied={c.get('status')} ({c.get('reason')}): {c.get('message')}")
    elif cmd == "assert-edit":  # assert-edit SNAPSHOT BEFORE OBJECT
        failed = assert_edit(*args)
        print("; ".join(failed))
        sys.exit(1 if failed else 0)
    elif cmd == "explain":  # explain NODE DEST < /routes/DEST/explain
        trace = json.load(sys.stdin)
        parts = []
        for c in trace.get("candidates", []):
            if c.get("status") == "selected":
                parts.append(f"{c['next_hop']} selected (cost {c['metrics']['cost']})")
            else:
                parts.append(f"{c['next_hop']} {c.get('status')}: {c.get('criterion')}, {c.get('detail')}")
        print(f"  {args[0]} explains {args[1]}: " + "; ".join(parts))
    else:
        sys.exit(f"helper: unknown command {cmd}")


main()
PY
helper() { "$PYTHON" "$HELPER" "$@"; }
# A string field of a one-line JSON object (the `listening` lines).
field() { sed -n 's/.*"'"$1"'":"\([^"]*\)".*/\1/p' <<<"$2"; }

# ---------------------------------------------------------------- polling

# Running processes, one "pid name log" per line (for messages).
: >"$DIR/processes"
started() { # pid name log
  PIDS="$PIDS $1"
  echo "$1 $2 $3" >>"$DIR/processes"
}

# Fetches the operator's /sidecars and /status, and the /routes of every
# sidecar started so far, into folder $1.
snapshot() {
  mkdir -p "$1"
  local node urls=''
  for node in $NODES; do
    [ -s "$DIR/$node/api" ] || continue
    urls="$urls routes-$node.json http://$(cat "$DIR/$node/api")/routes"
  done
  # shellcheck disable=SC2086 # $urls: names and URLs without spaces
  http_get "$1" sidecars.json "$HTTP/sidecars" status.json "$HTTP/status" $urls 2>/dev/null
}

# Every node's /stats into folder $1.
fetch_stats() {
  local node urls=''
  for node in $NODES; do urls="$urls stats-$node.json http://$(cat "$DIR/$node/api")/stats"; done
  # shellcheck disable=SC2086
  http_get "$1" $urls || die "GET /stats failed"
}

# Polls every 100 ms, at most TIMEOUT, until `helper CHECK SNAPSHOT ARGS...`
# holds on a fresh snapshot; dies with the last observation otherwise.
wait_until() { # what snapshot-dir check args...
  local what=$1 snap=$2 check=$3 deadline last='no answer yet' pid name log
  shift 3
  deadline=$(($(now_ms) + TIMEOUT * 1000))
  while :; do
    while read -r pid name log; do
      kill -0 "$pid" 2>/dev/null || die "$name exited while waiting for $what (see $log)"
    done <"$DIR/processes"
    if snapshot "$snap"; then
      if last=$(helper "$check" "$snap" "$@"); then return 0; fi
    else
      last="an HTTP request failed"
    fi
    [ "$(now_ms)" -lt "$deadline" ] || die "timed out after ${TIMEOUT} s waiting for $what; last: $last"
    sleep 0.1
  done
}

# ---------------------------------------------------------------- operator

step "operator: fabric-operator run --manifests (local mode, plaintext, static token)"
env "$CHILD_ENV" "$OPERATOR_BIN" run --manifests "$DIR/manifests" --insecure-plaintext --token-file "$DIR/token" \
  --listen 127.0.0.1:0 --http 127.0.0.1:0 --state-dir "$DIR/operator-state" \
  --poll-interval 100ms --resume-grace 0s --rotation-tick 100ms \
  >"$DIR/operator.out" 2>"$DIR/operator.log" </dev/null &
OPERATOR_PID=$!
started "$OPERATOR_PID" fabric-operator "$DIR/operator.log"
line=$(wait_listening "$DIR/operator.out" "$OPERATOR_PID" "fabric-operator" "$DIR/operator.log")
GRPC=$(field grpc "$line")
HTTP="http://$(field http "$line")"
say "  gRPC $GRPC, HTTP $HTTP, manifests $DIR/manifests"
# The operator deployed first, as in a cluster: its first keys are active
# (nobody to wait for) before any sidecar asks for a config. A sidecar that
# connects earlier peers before it has a key, and its first announcements are
# refused (unsigned) until its key is active.
wait_until "the operator's first signing keys" "$DIR/keys" keys-active
say "  signing keys generated and active for: $NODES"

# ---------------------------------------------------------------- sidecars

step "sidecars: $NODES (routing-sidecar run --operator http://$GRPC)"
T_SIDECARS=$(now_ms)
for node in $NODES; do
  mkdir -p "$DIR/$node"
  cp "$DEMO/bootstrap/$node.yaml" "$DIR/$node/config.yaml"
  env "$CHILD_ENV" "$SIDECAR_BIN" run --config "$DIR/$node/config.yaml" --state-dir "$DIR/$node/state" \
    --listen 127.0.0.1:0 --api 127.0.0.1:0 \
    --operator "http://$GRPC" --operator-token-file "$DIR/token" \
    --namespace fabric --label "role=${node%%-*}" --label app=fabric-demo \
    >"$DIR/$node/out" 2>"$DIR/$node/sidecar.log" </dev/null &
  started "$!" "sidecar-$node" "$DIR/$node/sidecar.log"
  echo "$!" >"$DIR/$node/pid"
done
for node in $NODES; do
  line=$(wait_listening "$DIR/$node/out" "$(cat "$DIR/$node/pid")" "sidecar $node" "$DIR/$node/sidecar.log")
  field api "$line" >"$DIR/$node/api"
  field peer "$line" >"$DIR/$node/peer"
  say "  $node: role=${node%%-*}, peer $(cat "$DIR/$node/peer"), API http://$(cat "$DIR/$node/api")"
done

# ---------------------------------------------------------------- converge

step "waiting: every sidecar SYNCED, signing keys active, signed routes converged"
wait_until "the fabric to converge through core-1" "$DIR/before" check core-1
ok "converged $(elapsed "$T_SIDECARS") s after the sidecars started ($(elapsed "$T0") s since the start)"
fetch_stats "$DIR/before"
say ""
say "Config versions (operator /sidecars):"
[ "$CI_MODE" = 1 ] || helper versions "$DIR/before"
echo "Signing keys (operator /status -> keyRotation; RoutePolicy requires signatures):"
helper keys "$DIR/before"
echo "Next hops (sidecar /routes):"
helper table "$DIR/before"

# ---------------------------------------------------------------- the edit

step "edit: drain core-1 (examples/demo/edit/edge-uplinks.yaml replaces $EDITED_OBJECT)"
if [ "$CI_MODE" = 0 ] && command -v diff >/dev/null 2>&1; then
  say "  edge-uplinks.yaml, the neighbor core-1 of every edge (comments left out):"
  diff "$DIR/manifests/edge-uplinks.yaml" "$DEMO/edit/edge-uplinks.yaml" |
    sed -n 's/^< \([^#]*\)$/    -\1/p; s/^> \([^#]*\)$/    +\1/p' || true
fi
T_EDIT=$(now_ms)
# Atomic replace: the operator never reads a half-written file.
cp "$DEMO/edit/edge-uplinks.yaml" "$DIR/edge-uplinks.yaml.new"
mv "$DIR/edge-uplinks.yaml.new" "$DIR/manifests/edge-uplinks.yaml"
wait_until "the edit to be SYNCED and routed through core-2" "$DIR/after" check core-2 "$DIR/before" "$EDITED_OBJECT"
ok "edit SYNCED and routed in $(elapsed "$T_EDIT") s"
fetch_stats "$DIR/after"
failed=$(helper assert-edit "$DIR/after" "$DIR/before" "$EDITED_OBJECT") || die "after the edit: $failed"
say ""
say "Config versions (only the edges changed; one push each):"
[ "$CI_MODE" = 1 ] || helper versions "$DIR/after"
echo "Operator status of the edited object (/status):"
helper applied "$DIR/after" "$EDITED_OBJECT"
echo "Next hops after the edit:"
helper table "$DIR/after" "$DIR/before"
if [ "$CI_MODE" = 0 ]; then
  http_get "$DIR/after" explain.json "http://$(cat "$DIR/edge-a/api")/routes/payments/explain" ||
    die "GET /routes/payments/explain from edge-a failed"
  helper explain edge-a payments <"$DIR/after/explain.json"
fi

ok "demo: OK in $(elapsed "$T0") s: every sidecar SYNCED, every key active, routes signed (none refused), next hops core-1 -> core-2 after the edit, Applied 2/2, one push per edited sidecar"

# ---------------------------------------------------------------- --keep

if [ "$KEEP" = 1 ]; then
  {
    echo "#!/bin/sh"
    echo "# Stops the demo fabric started by scripts/demo.sh --keep."
    echo "kill$PIDS 2>/dev/null; rm -rf '$DIR'"
  } >"$DIR/stop.sh"
  chmod +x "$DIR/stop.sh"
  echo ""
  echo "Left running (--keep):"
  echo "  operator  gRPC $GRPC  HTTP $HTTP  (/status, /sidecars, /metrics)  pid $OPERATOR_PID  log $DIR/operator.log"
  for node in $NODES; do
    echo "  $node  API http://$(cat "$DIR/$node/api")  peer $(cat "$DIR/$node/peer")  pid $(cat "$DIR/$node/pid")  log $DIR/$node/sidecar.log"
  done
  echo "  manifests $DIR/manifests (edit them: the operator applies every change)"
  echo "  try: curl -s http://$(cat "$DIR/edge-a/api")/routes/payments/explain; curl -s $HTTP/sidecars"
  echo "  stop: sh $DIR/stop.sh"
fi
