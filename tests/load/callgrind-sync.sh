#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind (repeatable on a noisy machine): the
# gateway (release, workers = 1) under `valgrind --tool=callgrind`, driven by `wrk -t1 -c10 -d8s`
# through an nginx upstream that answers `200 ok`. With --nginx, nginx as the proxy (the peer
# config of tests/load/peers, one worker, no master process) is counted the same way in the same
# run, for the comparison. Startup is included (a small part of a run, so the figure is
# slightly pessimistic). With --h2 the clients speak h2c (prior knowledge), driven by
# `h2load -t1 -c10 -n 12000` instead (a fixed count, so that two builds amortise startup
# alike; nginx as the proxy then uses nginx-h2c.conf).
# Installs valgrind, nginx and wrk (h2load with --h2) from Debian's packages if missing.
#
# Usage: tests/load/callgrind-sync.sh [--nginx] [--h2] [--peers DIR] [GATEWAY_BINARY]
#        (default binary: build target/release/gateway)
# Set CALLGRIND_OUT=FILE to keep the gateway's profile (then `callgrind_annotate FILE`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEERS="${PEERS:-$ROOT/tests/load/peers}"
NGINX=0
H2=0
BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --nginx) NGINX=1; shift ;;
        --h2) H2=1; shift ;;
        --peers) PEERS="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) BIN="$1"; shift ;;
    esac
done
# shellcheck source=tests/load/lib.sh
source "$ROOT/tests/load/lib.sh"
NGINX_CONF=nginx.conf
if [ "$H2" = 1 ]; then
    require_tools valgrind nginx h2load
    NGINX_CONF=nginx-h2c.conf
else
    require_tools valgrind nginx wrk
fi
if [ "$NGINX" = 1 ] && [ ! -f "$PEERS/$NGINX_CONF" ]; then
    echo "missing $PEERS/$NGINX_CONF (set --peers DIR)" >&2
    exit 2
fi
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build-bins --release --quiet)
    BIN="$ROOT/target/release/gateway"
fi
start_work
UP=28480 PROXY=28481

# The upstream: nginx answering `200 ok` itself.
cat > "$WORK/upstream.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
error_log $WORK/upstream-error.log warn;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$UP; location / { return 200 "ok"; } } }
CONF
nginx -c "$WORK/upstream.conf" & PIDS+=($!)
wait_port $UP

# measure NAME COMMAND...: runs COMMAND (a proxy listening on $PROXY) under callgrind, drives it
# with wrk (or h2load), stops it, and prints its instructions per request.
measure() {
    local name="$1" out requests total vg
    shift
    valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.out" "$@" >"$WORK/$name.log" 2>&1 &
    vg=$!
    wait_port $PROXY 60 # valgrind starts slowly
    if [ "$H2" = 1 ]; then
        out=$(h2load -t1 -c10 -n 12000 "http://127.0.0.1:$PROXY/")
        requests=$(awk '/^requests:/{print $6}' <<<"$out")
    else
        out=$(wrk -t1 -c10 -d8s "http://127.0.0.1:$PROXY/")
        requests=$(awk '/requests in/{print $1}' <<<"$out")
    fi
    kill -INT $vg; wait $vg 2>/dev/null || true
    total=$(callgrind_annotate "$WORK/$name.out" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
    echo "$name: requests $requests, instructions $total, per request $((total / requests))"
}

plain_gateway_config $PROXY $UP >"$WORK/gateway.toml"
echo "binary $BIN"
measure gateway "$BIN" --config "$WORK/gateway.toml"
[ -n "${CALLGRIND_OUT:-}" ] && cp "$WORK/gateway.out" "$CALLGRIND_OUT"

if [ "$NGINX" = 1 ]; then
    # The peer config, one process (callgrind follows the worker only when it is the master).
    sed -e "s|/tmp/lab-nginx.pid|$WORK/nginx.pid|" \
        -e "s|/tmp/lab-nginx-error.log|$WORK/nginx-error.log|" \
        -e "s|127.0.0.1:18081|127.0.0.1:$PROXY|" \
        -e "s|127.0.0.1:18080|127.0.0.1:$UP|" \
        -e "s|^daemon off;|daemon off;\nmaster_process off;|" \
        "$PEERS/$NGINX_CONF" >"$WORK/nginx.conf"
    echo "nginx $(nginx -v 2>&1 | sed 's|.*/||')"
    measure nginx nginx -c "$WORK/nginx.conf"
fi
