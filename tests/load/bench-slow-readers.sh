#!/usr/bin/env bash
# Slow readers of large responses: N clients (default 1,000) each ask for a response of SIZE
# bytes (default 1 MB) and read none of it (a 4 KB receive buffer each), while a good client asks
# for a small one every 100 ms. A response the kernel's socket buffers can hold (a few MB on
# loopback) frees the upstream under any proxy; larger ones show whether the proxy does. For the gateway (release, one worker), nginx and haproxy (the peer configs of
# tests/load/peers, one worker or thread each) in front of the same nginx upstream, one after
# the other: the proxy's resident memory before and with the readers, per reader, and the good
# client's answers with their median and worst time (a proxy whose upstream slots the readers
# hold cannot answer it).
# Installs nginx and haproxy from Debian's packages if missing.
#
# Usage: tests/load/bench-slow-readers.sh [--readers N] [--size BYTES] [--rounds R] [GATEWAY_BINARY]
#        (default binary: build target/release/gateway)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEERS="$ROOT/tests/load/peers"
READERS=1000
SIZE=1000000
ROUNDS=1
BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --readers) READERS="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) BIN="$1"; shift ;;
    esac
done
# shellcheck source=tests/load/lib.sh
source "$ROOT/tests/load/lib.sh"
require_tools nginx haproxy python3
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build-bins --release --quiet)
    BIN="$ROOT/target/release/gateway"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
start_work
UP=28490 PROXY=28491

# The upstream: nginx serving a file of $SIZE bytes at /big and `200 ok` elsewhere.
head -c "$SIZE" /dev/urandom >"$WORK/big"
cat >"$WORK/upstream.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
error_log $WORK/upstream-error.log warn;
events { worker_connections 10240; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$UP;
    location = /big { alias $WORK/big; }
    location / { return 200 "ok"; }
  }
}
CONF
nginx -c "$WORK/upstream.conf" & PIDS+=($!)
wait_port $UP

plain_gateway_config $PROXY $UP >"$WORK/gateway.toml"
sed -e "s|/tmp/lab-nginx.pid|$WORK/nginx.pid|" \
    -e "s|/tmp/lab-nginx-error.log|$WORK/nginx-error.log|" \
    -e "s|127.0.0.1:18081|127.0.0.1:$PROXY|" \
    -e "s|127.0.0.1:18080|127.0.0.1:$UP|" \
    "$PEERS/nginx.conf" >"$WORK/nginx.conf"
sed -e "s|127.0.0.1:18082|127.0.0.1:$PROXY|" \
    -e "s|127.0.0.1:18080|127.0.0.1:$UP|" \
    "$PEERS/haproxy.cfg" >"$WORK/haproxy.cfg"

cat >"$WORK/readers.py" <<'PY'
import socket, statistics, sys, time
port, readers = int(sys.argv[1]), int(sys.argv[2])
conns = []
for _ in range(readers):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
    conns.append(s)
time.sleep(3)  # every buffer on the way fills
print("READY", flush=True)
sys.stdin.readline()  # the memory is measured now
ok, times = 0, []
for _ in range(50):
    start = time.monotonic()
    try:
        g = socket.create_connection(("127.0.0.1", port), timeout=5)
        g.sendall(b"GET /small HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        answer = b""
        while True:
            chunk = g.recv(65536)
            if not chunk:
                break
            answer += chunk
        g.close()
        if answer.startswith(b"HTTP/1.1 200"):
            ok += 1
            times.append(time.monotonic() - start)
    except OSError:
        pass
    time.sleep(0.1)
med = statistics.median(times) * 1000 if times else float("nan")
worst = max(times) * 1000 if times else float("nan")
print(f"GOOD {ok} {med:.1f} {worst:.1f}", flush=True)
for s in conns:
    s.close()
PY

# rss PID...: their resident memory together, in KB.
rss() { local p; for p in "$@"; do ps -o rss= -p "$p"; done | awk '{s+=$1} END {print s}'; }

# run NAME COMMAND...: the proxy's figures with $READERS slow readers.
run() {
    local name="$1" proxy pids before during good
    shift
    "$@" >"$WORK/$name.log" 2>&1 & proxy=$!
    PIDS+=("$proxy")
    wait_port $PROXY 20
    sleep 0.5
    pids="$proxy $( (pgrep -P "$proxy" || true) | tr '\n' ' ')"
    # shellcheck disable=SC2086
    before=$(rss $pids)
    coproc READ { python3 "$WORK/readers.py" $PROXY "$READERS"; }
    read -r _ <&"${READ[0]}"
    # shellcheck disable=SC2086
    during=$(rss $pids)
    echo >&"${READ[1]}"
    read -r _ good <&"${READ[0]}"
    wait "$READ_PID" 2>/dev/null || true
    kill "$proxy"; wait "$proxy" 2>/dev/null || true
    # Per reader: what the readers added, over their number.
    printf "%-8s rss before %7d KB, with %d readers %8d KB (%5.1f KB each); good client ok/50, median ms, worst ms: %s\n" \
        "$name" "$before" "$READERS" "$during" "$(awk -v a="$before" -v b="$during" -v n="$READERS" 'BEGIN{print (b-a)/n}')" "$good"
}

echo "binary $BIN, $READERS readers of $SIZE bytes each"
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round"
    run gateway "$BIN" --config "$WORK/gateway.toml"
    run nginx nginx -c "$WORK/nginx.conf"
    run haproxy haproxy -f "$WORK/haproxy.cfg"
done
