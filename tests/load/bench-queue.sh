#!/usr/bin/env bash
# Queue-delivery benchmarks, each side by side in the same run:
#  1. throughput: the gateway in front of example-echo by the sync path, and the same gateway
#     build with the service reachable only through the queue (same echo instance, its queue
#     consumer), driven alternately by the same `wrk`, several rounds; medians and the ratio.
#  2. memory: resident memory while 10,000 requests wait: the gateway holding them in the queue
#     (no worker runs), nginx and haproxy holding them in front of an upstream that answers
#     after a minute. Reported as RSS and RSS per waiting request above idle, read once the
#     requests have arrived (at least 10 s after the clients start, then until neither the
#     count of waiting requests nor the RSS has moved (by 1%) in 2 s, at most 60 s). Waiting
#     requests are counted where each target keeps them: the gateway's held calls (its
#     holdline_parked_calls gauge), nginx's connections to the upstream, haproxy's backend
#     sessions (queued or at the server, from its stats socket). With --tls the clients speak
#     HTTP/1.1 over TLS to all three (a throwaway CA and certificate the script makes; the
#     upstream side stays plain).
#
# Usage: tests/load/bench-queue.sh [--rounds N] [--duration 5s] [--held 10000] [--skip-build]
#                                  [--connections "50 200"] [--tls] [--memory-only]
# --memory-only skips part 1.
# Needs nginx, haproxy and wrk (installed with apt-get when missing and running as root) and
# redis-server. Uses ports 28180-28199.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ROUNDS=3 DURATION=5s HELD=10000 SKIP_BUILD=0 CONNECTIONS="50 200" TLS=0 MEMORY_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --held) HELD="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --tls) TLS=1; shift ;;
        --memory-only) MEMORY_ONLY=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
# shellcheck source=tests/load/lib.sh
source "$ROOT/tests/load/lib.sh"
require_tools nginx haproxy wrk redis-server openssl
[ "$SKIP_BUILD" = 1 ] || (cd "$ROOT" && cargo build-bins --release --quiet)
BIN="$ROOT/target/release"
start_work
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

REDIS=28180 ECHO=28181 SYNC=28182 QUEUE=28183 UP=28184 NGINX=28185 HAPROXY=28186 HOLD=28187
HAPROXY_STATS=28188
redis-server --port $REDIS --save "" --appendonly no --dir "$WORK" >/dev/null & PIDS+=($!)
wait_port $REDIS
"$BIN/example-echo" --listen 127.0.0.1:$ECHO --redis redis://127.0.0.1:$REDIS --service echo --concurrency 256 --work-ms 0 >/dev/null 2>&1 & PIDS+=($!)
# listen_toml PORT SCHEME: the gateway's listener on PORT, with the test certificate for https.
listen_toml() {
    if [ "$2" = https ]; then
        printf '[listen]\nhttps = "127.0.0.1:%s"\n[tls]\ncert = "%s"\nkey = "%s"\n' "$1" "$WORK/cert.pem" "$WORK/key.pem"
    else
        printf '[listen]\nhttp = "127.0.0.1:%s"\n' "$1"
    fi
}
gateway_config() { # port admin endpoints service hold [scheme]
    cat <<TOML
workers = 1
$(listen_toml "$1" "${6:-http}")
[admin]
listen = "127.0.0.1:$2"
[redis]
url = "redis://127.0.0.1:$REDIS"
[services.$4]
endpoints = [$3]
max_inflight_per_endpoint = 256
[services.$4.queue]
enabled = true
hold = "$5"
[[routes]]
prefix = "/"
service = "$4"
TOML
}
gateway_config $SYNC 28192 "\"http://127.0.0.1:$ECHO\"" echo 30s > "$WORK/sync.toml"
gateway_config $QUEUE 28193 "" echo 30s > "$WORK/queue.toml"
"$BIN/gateway" --config "$WORK/sync.toml" >/dev/null 2>&1 & PIDS+=($!)
"$BIN/gateway" --config "$WORK/queue.toml" >/dev/null 2>&1 & PIDS+=($!)
wait_port $ECHO; wait_port $SYNC; wait_port $QUEUE
curl -sf -o /dev/null "http://127.0.0.1:$QUEUE/warm" || { echo "queue path does not answer" >&2; exit 1; }

echo "== machine: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
if [ "$MEMORY_ONLY" = 0 ]; then
# Two client concurrencies: 50 connections leave the queue path bound by its latency (four Redis
# round trips per call), 200 keep every process busy, which is the throughput the path has.
echo "== 1. throughput, wrk -t1 -c${CONNECTIONS// /,} -d$DURATION, $ROUNDS rounds alternated; example-echo 256 slots, 0 ms work"
printf "%-6s %-6s %-8s %10s %10s %10s %8s\n" round conns path req/s p50_ms p99_ms non2xx
declare -A RPS
for round in $(seq "$ROUNDS"); do
    for conns in $CONNECTIONS; do
        for path in sync queue; do
            port=$SYNC; [ $path = queue ] && port=$QUEUE
            out=$(wrk -t1 -c"$conns" -d"$DURATION" --latency "http://127.0.0.1:$port/bench")
            rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
            p50=$(awk '$1=="50%"{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
            non2xx=$(awk '/Non-2xx/{print $5}' <<<"$out"); non2xx=${non2xx:-0}
            printf "%-6s %-6s %-8s %10s %10s %10s %8s\n" "$round" "$conns" $path "$rps" "$p50" "$p99" "$non2xx"
            RPS[$path-$conns]+="$rps "
        done
    done
done
for conns in $CONNECTIONS; do
    ms=$(median "${RPS[sync-$conns]}"); mq=$(median "${RPS[queue-$conns]}")
    echo "median req/s at $conns connections: sync $ms, queue $mq; queue/sync = $(awk -v q="$mq" -v s="$ms" 'BEGIN{printf "%.2f", q/s}')"
done
fi

# Part 2 over TLS: the peers' listeners take these words, and the clients an https URL.
SCHEME=http NGINX_TLS="" HAPROXY_TLS=""
if [ "$TLS" = 1 ]; then
    test_cert "$WORK"
    SCHEME=https
    NGINX_TLS=" ssl; ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_protocols TLSv1.2 TLSv1.3"
    HAPROXY_TLS=" ssl crt $WORK/cert-key.pem alpn http/1.1"
fi
echo "== 2. resident memory with $HELD requests waiting (wrk -t2 -c$HELD, $SCHEME, RSS once settled)"
"$BIN/holdline-load" upstream --listen 127.0.0.1:$UP --delay-ms 60000 >/dev/null 2>&1 & PIDS+=($!)
gateway_config $HOLD 28194 "" held 120s $SCHEME > "$WORK/hold.toml"
"$BIN/gateway" --config "$WORK/hold.toml" >/dev/null 2>&1 & GW=$!; PIDS+=($GW)
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 30000; }
worker_rlimit_nofile 20000;
http {
  access_log off;
  upstream svc { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX$NGINX_TLS;
    location / { proxy_pass http://svc; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_read_timeout 120s; }
  }
}
CONF
nginx -c "$WORK/nginx.conf" >/dev/null 2>&1 & PIDS+=($!)
cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  # haproxy reserves two descriptors per connection; 9,900 is the most the open-file limit of
  # 20,000 allows it (it refuses to start above). The other 100 wait in the listen backlog.
  maxconn 9900
  stats socket ipv4@127.0.0.1:$HAPROXY_STATS level user
defaults
  mode http
  timeout connect 1s
  timeout client 120s
  timeout server 120s
  timeout queue 120s
frontend fe
  bind 127.0.0.1:$HAPROXY$HAPROXY_TLS
  default_backend be
backend be
  server s1 127.0.0.1:$UP maxconn 64
CONF
haproxy -f "$WORK/haproxy.cfg" >/dev/null 2>&1 & HAP=$!; PIDS+=($HAP)
wait_port $UP; wait_port $HOLD; wait_port $NGINX; wait_port $HAPROXY
sleep 1
NGW=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)
# waiting NAME: how many requests NAME holds.
waiting() {
    case "$1" in
        gateway) curl -s http://127.0.0.1:28194/metrics | awk '$1 == "holdline_parked_calls" {print $2}' ;;
        nginx) ss -Htn state established "( dport = :$UP )" | wc -l ;;
        haproxy)
            exec 3<>"/dev/tcp/127.0.0.1/$HAPROXY_STATS"
            printf 'show stat\n' >&3
            awk -F, '$1 == "be" && $2 == "BACKEND" {print $5}' <&3
            exec 3<&- ;;
    esac
}
# settle NAME PID: waits 10 s, then until neither NAME's waiting requests nor PID's RSS has
# moved in 2 s (the RSS by less than 1%), at most 60 s in all; prints the RSS in KB, the
# requests waiting and the seconds waited.
settle() {
    local waited=10 before now held was
    sleep 10
    now=$(rss_kb "$2") held=$(waiting "$1")
    while [ $waited -lt 60 ]; do
        before=$now was=$held
        sleep 2; waited=$((waited + 2))
        now=$(rss_kb "$2") held=$(waiting "$1")
        [ "$held" -eq "$was" ] && [ $(((now - before) * 100)) -lt "$before" ] && break
    done
    echo "$now $held $waited"
}
printf "%-8s %10s %10s %9s %16s %8s\n" target idle_MB held_MB waiting KB_per_request after_s
for target in gateway:$GW:$HOLD nginx:$NGW:$NGINX haproxy:$HAP:$HAPROXY; do
    IFS=: read -r name pid port <<<"$target"
    idle=$(rss_kb "$pid")
    wrk -t2 -c"$HELD" -d90s --timeout 100s "$SCHEME://127.0.0.1:$port/held" >/dev/null 2>&1 & WRK=$!
    read -r held count waited < <(settle "$name" "$pid")
    kill $WRK 2>/dev/null; wait $WRK 2>/dev/null || true
    printf "%-8s %10.1f %10.1f %9s %16.1f %8s\n" "$name" "$(bc -l <<<"$idle/1024")" "$(bc -l <<<"$held/1024")" "$count" "$(bc -l <<<"($held-$idle)/($count + ($count == 0))")" "$waited"
    sleep 2
done
