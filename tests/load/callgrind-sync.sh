#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind (repeatable on a noisy machine): the
# gateway (release, workers = 1) under `valgrind --tool=callgrind`, driven by `wrk -t1 -c10 -d8s`
# through an nginx upstream that answers `200 ok`. Startup is included (about 1.2M instructions,
# under 0.5% of a run). Installs valgrind, nginx and wrk from Debian's packages if missing.
#
# Usage: tests/load/callgrind-sync.sh [GATEWAY_BINARY]   (default: build target/release/gateway)
# Set CALLGRIND_OUT=FILE to keep the profile (then `callgrind_annotate FILE`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
for tool in valgrind nginx wrk; do
    if ! command -v "$tool" >/dev/null && [ ! -x "/usr/sbin/$tool" ]; then
        [ "$(id -u)" = 0 ] || { echo "missing $tool" >&2; exit 1; }
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind nginx wrk >/dev/null
    fi
done
export PATH="$PATH:/usr/sbin"
BIN="${1:-}"
if [ -z "$BIN" ]; then
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p holdline-gateway
    BIN="$ROOT/target/release/gateway"
fi
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 300); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
UP=28480 GW=28481
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$UP; location / { return 200 "ok"; } } }
CONF
nginx -c "$WORK/nginx.conf" & PIDS+=($!)
cat > "$WORK/gateway.toml" <<TOML
workers = 1
[listen]
http = "127.0.0.1:$GW"
[services.up]
endpoints = ["http://127.0.0.1:$UP"]
[[routes]]
prefix = "/"
service = "up"
TOML
valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" "$BIN" --config "$WORK/gateway.toml" >/dev/null 2>&1 &
VG=$!
wait_port $UP; wait_port $GW
out=$(wrk -t1 -c10 -d8s "http://127.0.0.1:$GW/")
requests=$(awk '/requests in/{print $1}' <<<"$out")
kill -INT $VG; wait $VG 2>/dev/null || true
total=$(callgrind_annotate "$WORK/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
[ -n "${CALLGRIND_OUT:-}" ] && cp "$WORK/callgrind.out" "$CALLGRIND_OUT"
echo "binary $BIN"
echo "requests $requests, instructions $total, per request $((total / requests))"
