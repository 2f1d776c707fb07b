#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing (redis-server, and
# the deploy checks' tools), then the workspace's tests, the deployment checks, the load tool's
# smoke scenario and the quick start's self-check. This is the README's test command; .ci/run
# calls it after fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "missing ${need_apt[*]}: install with 'sudo apt-get install ${need_apt[*]}'" >&2
    exit 1
  fi
fi

echo "== workspace tests (unit, integration, end-to-end, doc)"
# Every package with integration tests has its binaries built for them, with this command's
# features: the end-to-end tests run those as they are (`testkit::workspace_bin`).
HOLDLINE_TEST_BINS_BUILT=1 cargo test --workspace --locked
# The steps below run the binaries these tests were built with (each package with integration
# tests gets its binaries built for them): building them again with `cargo build` would compile
# the gateway a second time, with the features of a normal build.
BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug"

echo "== deployment checks"
HOLDLINE_GATEWAY_BIN="$BIN/gateway" bash deploy/check.sh

if [ -x scripts/quickstart.sh ] && grep -q -- '--check' scripts/quickstart.sh; then
  echo "== quick start self-check"
  QUICKSTART_BIN_DIR="$BIN" scripts/quickstart.sh --check
fi

echo "== load tool smoke scenario (gateway + example-echo + private redis, every call accounted for)"
"$BIN/holdline-load" run tests/load/scenarios/smoke.toml --progress plain
