#!/usr/bin/env bash
# Runs every shipped scenario against the gateway, nginx and haproxy, one after the other, and
# leaves the reports, pictures and side-by-side tables in tests/load/out/ (BENCHMARKS.md is
# written from them).
#
# Usage: tests/load/run-scenarios.sh [--targets gateway,nginx,haproxy] [scenario ...]
# With no scenario names, runs all of tests/load/scenarios/*.toml except smoke.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TARGETS="gateway,nginx,haproxy"
if [ "${1:-}" = "--targets" ]; then
    TARGETS="$2"
    shift 2
fi
cd "$ROOT"
# shellcheck source=tests/load/lib.sh
source "$ROOT/tests/load/lib.sh"
peers=()
for tool in nginx haproxy; do
    case ",$TARGETS," in *",$tool,"*) peers+=("$tool") ;; esac
done
[ ${#peers[@]} -eq 0 ] || require_tools "${peers[@]}"
(cd "$ROOT" && cargo build-bins --release -q) || exit 2

if [ $# -eq 0 ]; then
    set -- $(ls tests/load/scenarios/*.toml | xargs -n1 basename | sed 's/\.toml$//' | grep -v '^smoke$')
fi
status=0
for name in "$@"; do
    echo "== $name against $TARGETS"
    target/release/holdline-load run "tests/load/scenarios/$name.toml" --target "$TARGETS" \
        --progress plain
    code=$?
    # 1 is a failed threshold: a finding, not a reason to stop. 2 is the tool failing.
    [ $code -ge 2 ] && status=2
    [ $code -eq 1 ] && [ $status -eq 0 ] && status=1
done
exit $status
