#!/usr/bin/env bash
# Validates everything under deploy/ offline: YAML lint, Dockerfile lint, the compose file against
# the compose spec, the Kubernetes manifests against the Kubernetes schemas (and the KEDA and
# Prometheus Operator CRDs against subset schemas), cross-references between all of them, the
# gateway configs through `gateway check-config`, the alert rules and their unit tests, the Grafana
# dashboard and its queries, and a self-test proving each check still rejects broken input. Metric
# names, labels, label values and each config's parsed form come from the gateway binary itself
# (`gateway describe --json`). Exits non-zero if anything fails.
#
#   deploy/check.sh            # from anywhere
#
# It installs what it needs on first use: a Python venv with pinned tools under
# ${XDG_CACHE_HOME:-$HOME/.cache}/holdline-deploy-venv and promtool (from Debian's prometheus
# package, extracted, never installed: installing it would start a Prometheus server) under
# .../holdline-deploy-tools. Later runs reuse both and touch no network.
set -uo pipefail
# The checks run from the work tree; keep Python's bytecode caches out of it.
export PYTHONDONTWRITEBYTECODE=1

DEPLOY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}"
VENV="$CACHE/holdline-deploy-venv"
TOOLS="$CACHE/holdline-deploy-tools"
REQUIREMENTS="$DEPLOY/checks/requirements.txt"

log() { printf '%s\n' "$*" >&2; }
die() { log "deploy/check.sh: $*"; exit 2; }

is_root() { [ "$(id -u)" = 0 ]; }

# === setup ===

ensure_python() {
    command -v python3 >/dev/null || { is_root && apt-get install -y -q python3 >&2; } \
        || die "python3 is missing: install it (Debian: apt-get install python3 python3-venv)"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "python3 is older than 3.11 (the checks need tomllib)"
}

# The venv is rebuilt only when requirements.txt or the Python version changes.
ensure_venv() {
    local stamp want
    want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) $(python3 -V 2>&1)"
    stamp="$VENV/.holdline-requirements"
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    log "setting up $VENV"
    if ! python3 -m venv --clear "$VENV" >&2; then
        is_root || die "python3 -m venv failed: install python3-venv"
        if ! { apt-get install -y -q python3-venv >&2 && python3 -m venv --clear "$VENV" >&2; }; then
            die "could not create $VENV"
        fi
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS" >&2 \
        || die "pip install -r $REQUIREMENTS failed"
    printf '%s' "$want" >"$stamp"
}

# promtool from PATH, else from the cache, else extracted from Debian's prometheus package.
ensure_promtool() {
    if command -v promtool >/dev/null; then
        PROMTOOL="$(command -v promtool)"
        return 0
    fi
    PROMTOOL="$TOOLS/promtool"
    [ -x "$PROMTOOL" ] && return 0
    command -v apt-get >/dev/null || die "promtool not found and no apt-get to fetch it: install Prometheus's promtool"
    log "fetching promtool from Debian's prometheus package"
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064 # expand now: tmp is local
    trap "rm -rf '$tmp'" RETURN
    if ! (cd "$tmp" && apt-get download -q prometheus >&2 2>/dev/null); then
        is_root || die "apt-get download prometheus failed (as non-root, run 'sudo apt-get update' first)"
        if ! { apt-get update -q >&2 && (cd "$tmp" && apt-get download -q prometheus >&2); }; then
            die "apt-get download prometheus failed"
        fi
    fi
    mkdir -p "$TOOLS"
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool \
        || die "could not extract promtool"
    install -m 0755 "$tmp/usr/bin/promtool" "$PROMTOOL"
}

# === checks ===

PASSED=()
FAILED=()

# step NAME COMMAND...: runs one check, shows its output only when it fails.
step() {
    local name="$1" out start rc ms took
    shift
    start=$(date +%s%N)
    out="$("$@" 2>&1)"
    rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    took="$((ms / 1000)).$((ms % 1000 / 100))"
    if [ $rc -eq 0 ]; then
        PASSED+=("$name")
        printf '  PASS  %-22s %5ss\n' "$name" "$took"
        [ -n "$out" ] && [ "$name" = "self-test" ] && printf '%s\n' "$out" | sed 's/^/        /'
    else
        FAILED+=("$name")
        printf '  FAIL  %-22s %5ss\n' "$name" "$took"
        printf '%s\n' "$out" | sed 's/^/        /'
    fi
}

# The dashboard's queries, written out as recording rules, so promtool parses every one.
dashboard_queries() {
    local py="$1" run="$2" rules="$3"
    "$py" "$run" dashboard-rules "$rules" && "$PROMTOOL" check rules "$rules"
}

# The gateway binary the checks ask about its metrics and its reading of each config
# (`gateway describe`, `gateway check-config`): HOLDLINE_GATEWAY_BIN if set, else built from this
# workspace (a no-op when it is up to date).
ensure_gateway() {
    local manifest="$DEPLOY/../Cargo.toml" target
    if [ -n "${HOLDLINE_GATEWAY_BIN:-}" ]; then
        [ -x "$HOLDLINE_GATEWAY_BIN" ] || die "HOLDLINE_GATEWAY_BIN=$HOLDLINE_GATEWAY_BIN is not an executable"
        return 0
    fi
    command -v cargo >/dev/null || die "cargo not found: set HOLDLINE_GATEWAY_BIN to a gateway binary"
    log "building the gateway binary (set HOLDLINE_GATEWAY_BIN to use a built one)"
    cargo build -q -p holdline-gateway --bin gateway --manifest-path "$manifest" >&2 || die "cargo build failed"
    target="$(cargo metadata -q --format-version 1 --no-deps --manifest-path "$manifest" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    export HOLDLINE_GATEWAY_BIN="$target/debug/gateway"
}

# Every deployed gateway config through the gateway's own parser and validation.
gateway_configs() {
    local py="$1" run="$2" out="$3" files ok=0
    files="$("$py" "$run" gateway-configs "$out")" || return 1
    while IFS= read -r f; do
        "$HOLDLINE_GATEWAY_BIN" check-config "$f" || ok=1
    done <<<"$files"
    return $ok
}

main() {
    ensure_python
    mkdir -p "$CACHE"
    # Two runs at once (CI and a developer) must not install into the same venv together.
    exec 9>"$CACHE/holdline-deploy.lock"
    if command -v flock >/dev/null; then flock 9; fi
    ensure_venv
    ensure_promtool
    exec 9>&-
    ensure_gateway

    local bin="$VENV/bin" py="$VENV/bin/python" run="$DEPLOY/checks/run.py"
    local scratch
    scratch="$(mktemp -d)"
    # shellcheck disable=SC2064 # expand now
    trap "rm -rf '$scratch'" EXIT
    cd "$DEPLOY" || die "cannot enter $DEPLOY"

    echo "deploy checks ($DEPLOY)"
    step "yamllint" "$bin/yamllint" --strict -c yamllint.yaml .
    step "hadolint" "$bin/hadolint" --config docker/hadolint.yaml docker/gateway.Dockerfile docker/service.Dockerfile
    step "compose schema" "$bin/check-jsonschema" --builtin-schema vendor.compose-spec compose/compose.yaml
    step "compose references" "$py" "$run" compose
    step "crd schemas" "$bin/check-jsonschema" --check-metaschema checks/crd-schemas/*.json
    step "kubernetes" "$py" "$run" k8s
    step "gateway configs" gateway_configs "$py" "$run" "$scratch/gateway-configs"
    step "alert rules" "$PROMTOOL" check rules observability/prometheus/holdline-alerts.yaml
    step "alert rule tests" "$PROMTOOL" test rules observability/prometheus/holdline-alerts.test.yaml
    step "prometheus config" "$PROMTOOL" check config --syntax-only compose/prometheus.yml
    step "dashboard and metrics" "$py" "$run" observability
    step "dashboard queries" dashboard_queries "$py" "$run" "$scratch/dashboard-rules.yaml"
    step "self-test" env HOLDLINE_DEPLOY_BIN="$bin" PROMTOOL="$PROMTOOL" "$py" "$run" selftest

    local total=$((${#PASSED[@]} + ${#FAILED[@]}))
    if [ ${#FAILED[@]} -eq 0 ]; then
        echo "deploy checks: all $total passed"
        return 0
    fi
    echo "deploy checks: ${#FAILED[@]} of $total failed: ${FAILED[*]}"
    return 1
}

main "$@"
