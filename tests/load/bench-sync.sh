#!/usr/bin/env bash
# The sync-proxy benchmark: the gateway against nginx and haproxy as plain reverse proxies.
#
# A trivial upstream (`holdline-load upstream`, 200 "ok" at once) listens on 127.0.0.1:18080;
# the gateway (workers = 1) on 18083, nginx on 18081 and haproxy on 18082 proxy to it, with the
# reference configs of tests/load/peers copied and adapted into a temporary directory. Each is
# driven by the same `wrk -t1 -c50 -d5s`, alternating between them for several rounds, and the
# script prints requests/s, p50, p99 and the proxy's own CPU time per request (user + system of
# its processes, from /proc) per run, the medians, the ratios gateway/nginx and gateway/haproxy,
# in how many rounds the gateway did better than each peer (with a sign test), and the machine.
#
# The peer configs add no headers, while the gateway sends `x-forwarded-for`, `-proto`, `-host`
# and `x-request-id` to the upstream and returns `x-request-id` (tracing needs them), and the
# upstream, on the same two cores, pays for parsing them.
# --equal-work adds the same headers in nginx's and haproxy's copied configs, to compare the
# proxies doing the same work (the files in the peers directory are not changed).
#
# The client side's protocol, measured the same way (the upstream side stays plain HTTP/1.1):
#   (neither flag)  HTTP/1.1, wrk
#   --tls           HTTP/1.1 over TLS, wrk: nginx-tls.conf, haproxy-tls.cfg, the gateway's https
#                   listener, with a throwaway CA and certificate the script makes (test_cert)
#   --h2            h2c with prior knowledge, h2load -t1 -cCONNECTIONS -mSTREAMS: nginx-h2c.conf,
#                   haproxy.cfg (haproxy takes the h2 preface on a plain listener), the gateway's
#                   plain listener
#   --tls --h2      h2 over TLS chosen by ALPN, h2load, the TLS configs
# h2load gives no percentiles: p50 and p99 come from its per-request log (--log-file).
#
# Usage: tests/load/bench-sync.sh [--rounds N] [--duration 5s] [--connections 50]
#                                 [--upstream-delay-ms N] [--upstream-capacity N]
#                                 [--skip-gateway] [--skip-build] [--peers DIR] [--base-port 18080]
#                                 [--equal-work] [--tls] [--h2] [--streams 1]
# --base-port moves all five ports (upstream +0, nginx +1, haproxy +2, gateway +3, its admin +13)
# when the usual ones are taken. --streams is h2load's streams per connection (-m).
# Run from anywhere; it builds the release binaries first unless --skip-build.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEERS="${PEERS:-$ROOT/tests/load/peers}"
ROUNDS=3
DURATION=5s
CONNECTIONS=50
UPSTREAM_DELAY_MS=0
UPSTREAM_CAPACITY=""
SKIP_GATEWAY=0
SKIP_BUILD=0
BASE_PORT=18080
EQUAL_WORK=0
TLS=0
H2=0
STREAMS=1

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --upstream-delay-ms) UPSTREAM_DELAY_MS="$2"; shift 2 ;;
        --upstream-capacity) UPSTREAM_CAPACITY="$2"; shift 2 ;;
        --skip-gateway) SKIP_GATEWAY=1; shift ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --peers) PEERS="$2"; shift 2 ;;
        --base-port) BASE_PORT="$2"; shift 2 ;;
        --equal-work) EQUAL_WORK=1; shift ;;
        --tls) TLS=1; shift ;;
        --h2) H2=1; shift ;;
        --streams) STREAMS="$2"; shift 2 ;;
        -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [ "$ROUNDS" -lt 3 ]; then
    echo "at least 3 rounds, so that a median means something" >&2
    exit 2
fi

UPSTREAM_PORT=$BASE_PORT
NGINX_PORT=$((BASE_PORT + 1))
HAPROXY_PORT=$((BASE_PORT + 2))
GATEWAY_PORT=$((BASE_PORT + 3))
GATEWAY_ADMIN_PORT=$((BASE_PORT + 13))

# What the clients speak, and the peer configs and load tool for it.
SCHEME=http
NGINX_CONF=nginx.conf
HAPROXY_CONF=haproxy.cfg
if [ "$TLS" -eq 1 ]; then
    SCHEME=https
    NGINX_CONF=nginx-tls.conf
    HAPROXY_CONF=haproxy-tls.cfg
elif [ "$H2" -eq 1 ]; then
    NGINX_CONF=nginx-h2c.conf
fi
case "$TLS$H2" in
    00) PROTOCOL="HTTP/1.1" ;;
    10) PROTOCOL="HTTP/1.1 over TLS" ;;
    01) PROTOCOL="h2c (prior knowledge)" ;;
    11) PROTOCOL="h2 over TLS (ALPN)" ;;
esac

# --- tools ---------------------------------------------------------------------------------
# shellcheck source=tests/load/lib.sh
source "$ROOT/tests/load/lib.sh"
tools=(nginx haproxy curl)
if [ "$H2" -eq 1 ]; then tools+=(h2load); else tools+=(wrk); fi
[ "$TLS" -eq 1 ] && tools+=(openssl)
require_tools "${tools[@]}"

if [ "$SKIP_BUILD" -eq 0 ]; then
    echo "== building release binaries"
    # The one set every script builds (a subset would compile the gateway again).
    (cd "$ROOT" && cargo build-bins --release -q)
fi
LOAD_BIN="$ROOT/target/release/holdline-load"
GATEWAY_BIN="$ROOT/target/release/gateway"
[ -x "$LOAD_BIN" ] || { echo "missing $LOAD_BIN" >&2; exit 2; }
if [ "$SKIP_GATEWAY" -eq 0 ] && [ ! -x "$GATEWAY_BIN" ]; then
    echo "missing $GATEWAY_BIN (build it, or pass --skip-gateway)" >&2
    exit 2
fi
for f in "$NGINX_CONF" "$HAPROXY_CONF"; do
    [ -f "$PEERS/$f" ] || { echo "missing $PEERS/$f (set --peers DIR)" >&2; exit 2; }
done

# --- processes -----------------------------------------------------------------------------
start_work
for p in $UPSTREAM_PORT $NGINX_PORT $HAPROXY_PORT $GATEWAY_PORT $GATEWAY_ADMIN_PORT; do
    if port_busy "$p"; then
        echo "port $p is already in use" >&2
        exit 2
    fi
done

upstream_args=(upstream --listen "127.0.0.1:$UPSTREAM_PORT" --delay-ms "$UPSTREAM_DELAY_MS")
[ -n "$UPSTREAM_CAPACITY" ] && upstream_args+=(--capacity "$UPSTREAM_CAPACITY")
"$LOAD_BIN" "${upstream_args[@]}" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_port $UPSTREAM_PORT
[ "$TLS" -eq 1 ] && test_cert "$WORK"

# nginx: the peer config with its pid, error log and certificate moved into the work directory.
sed -e "s|/tmp/lab-nginx.pid|$WORK/nginx.pid|" \
    -e "s|/tmp/lab-nginx-error.log|$WORK/nginx-error.log|" \
    -e "s|/tmp/lab-cert.pem|$WORK/cert.pem|" \
    -e "s|/tmp/lab-key.pem|$WORK/key.pem|" \
    -e "s|127.0.0.1:18081|127.0.0.1:$NGINX_PORT|" \
    -e "s|127.0.0.1:18080|127.0.0.1:$UPSTREAM_PORT|" \
    "$PEERS/$NGINX_CONF" >"$WORK/nginx.conf"
if [ "$EQUAL_WORK" -eq 1 ]; then
    # The gateway's headers, both ways.
    sed -i 's|proxy_set_header Connection "";|&\
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\
      proxy_set_header X-Forwarded-Proto $scheme;\
      proxy_set_header X-Forwarded-Host $host;\
      proxy_set_header X-Request-ID $request_id;\
      add_header X-Request-ID $request_id;|' "$WORK/nginx.conf"
    grep -q X-Request-ID "$WORK/nginx.conf" || { echo "could not add the headers to nginx.conf" >&2; exit 2; }
fi
nginx -p "$WORK" -c "$WORK/nginx.conf" >"$WORK/nginx.log" 2>&1 &
PIDS+=($!)
declare -A PID_OF=([nginx]=$!)

# haproxy: the peer config; the server's maxconn follows the upstream's capacity when it has one.
sed -e "s|127.0.0.1:18082|127.0.0.1:$HAPROXY_PORT|" \
    -e "s|127.0.0.1:18080|127.0.0.1:$UPSTREAM_PORT|" \
    -e "s|/tmp/lab-cert-key.pem|$WORK/cert-key.pem|" \
    "$PEERS/$HAPROXY_CONF" >"$WORK/haproxy.cfg"
if [ -n "$UPSTREAM_CAPACITY" ]; then
    sed -i -E "s/(server s1 [^ ]+ maxconn )[0-9]+/\1$UPSTREAM_CAPACITY/" "$WORK/haproxy.cfg"
fi
if [ "$EQUAL_WORK" -eq 1 ]; then
    sed -i -E "s|^  bind 127.0.0.1:$HAPROXY_PORT( .*)?\$|&\\
  option forwardfor\\
  unique-id-format %[uuid()]\\
  http-request set-header X-Request-ID %[unique-id]\\
  http-request set-header X-Forwarded-Proto $SCHEME\\
  http-request set-header X-Forwarded-Host %[req.hdr(host)]\\
  http-response set-header X-Request-ID %[unique-id]|" "$WORK/haproxy.cfg"
    grep -q X-Request-ID "$WORK/haproxy.cfg" || { echo "could not add the headers to haproxy.cfg" >&2; exit 2; }
fi
haproxy -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
PID_OF[haproxy]=$!

TARGETS=(nginx haproxy)
declare -A PORT=([nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT [gateway]=$GATEWAY_PORT)
if [ "$SKIP_GATEWAY" -eq 0 ]; then
    if [ "$TLS" -eq 1 ]; then
        LISTEN="https = \"127.0.0.1:$GATEWAY_PORT\"
[tls]
cert = \"$WORK/cert.pem\"
key = \"$WORK/key.pem\""
    else
        LISTEN="http = \"127.0.0.1:$GATEWAY_PORT\""
    fi
    cat >"$WORK/gateway.toml" <<EOF
# Written by bench-sync.sh: one worker, a plain proxy to the upstream, no queue.
workers = 1

[listen]
$LISTEN

[admin]
listen = "127.0.0.1:$GATEWAY_ADMIN_PORT"

[services.bench]
endpoints = ["http://127.0.0.1:$UPSTREAM_PORT"]

[[routes]]
prefix = "/"
service = "bench"
strip_prefix = false
EOF
    RUST_LOG=warn "$GATEWAY_BIN" --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>&1 &
    PIDS+=($!)
    PID_OF[gateway]=$!
    TARGETS=(gateway nginx haproxy)
fi
# curl speaks what the load tool will, and checks the certificate against the test CA.
CURL=(curl -s -o /dev/null -w '%{http_code} HTTP/%{http_version}')
[ "$TLS" -eq 1 ] && CURL+=(--cacert "$WORK/ca.pem")
case "$TLS$H2" in
    01) CURL+=(--http2-prior-knowledge) ;;
    11) CURL+=(--http2) ;;
    *) CURL+=(--http1.1) ;;
esac
WANT="200 HTTP/1.1"
[ "$H2" -eq 1 ] && WANT="200 HTTP/2"
for t in "${TARGETS[@]}"; do
    wait_port "${PORT[$t]}"
    # Every target must answer 200, in the protocol under test, before it is measured.
    got="$("${CURL[@]}" "$SCHEME://127.0.0.1:${PORT[$t]}/" || true)"
    if [ "$got" != "$WANT" ]; then
        echo "$t answers \"$got\" instead of \"$WANT\"; logs in $WORK" >&2
        exit 1
    fi
done

# --- measurement ---------------------------------------------------------------------------
# wrk prints latency with a unit (us, ms, s); everything here is in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# CPU time (user + system, clock ticks) of a target: its process and its child processes
# (nginx's worker). The proxies share two cores with wrk and the upstream, so req/s depends on
# them too; CPU per request is each proxy's own cost.
cpu_ticks() {
    local total=0 pid ticks
    for pid in "$1" $(pgrep -P "$1" || true); do
        ticks="$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)"
        total=$((total + ticks))
    done
    echo "$total"
}
TICKS_PER_SECOND="$(getconf CLK_TCK)"
# wrk, for HTTP/1.1: "req/s p50_ms p99_ms non-2xx requests".
wrk_run() { # url duration
    local out rps p50 p99 errors requests
    out="$(wrk -t1 -c"$CONNECTIONS" -d"$2" --latency "$1")"
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    p50="$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
    p99="$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
    errors="$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")"
    requests="$(awk '/requests in/ {print $1}' <<<"$out")"
    echo "$rps $p50 $p99 ${errors:-0} $requests"
}
# h2load, for h2: the same figures, the percentiles from its per-request log (microseconds in the
# third column; -1 as the status of a failed stream).
h2load_run() { # url duration
    local out rps finished ok p50 p99 log="$WORK/h2load.log"
    out="$(h2load -t1 -c"$CONNECTIONS" -m"$STREAMS" -D "$2" --log-file="$log" "$1")"
    rps="$(awk '/^finished in/ {print $4}' <<<"$out")"
    finished="$(awk '/^requests:/ {print $6}' <<<"$out")"
    ok="$(awk '/^status codes:/ {print $3}' <<<"$out")"
    read -r p50 p99 < <(awk '{print $3}' "$log" | sort -n | awk '{v[NR] = $1} END {
        i50 = int(NR * 0.50); i99 = int(NR * 0.99); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1
        printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000 }')
    echo "$rps $p50 $p99 $((finished - ok)) $finished"
}
run_load() { # target duration -> "req/s p50_ms p99_ms errors cpu_us_per_request"
    local before after rps p50 p99 errors requests cpu url="$SCHEME://127.0.0.1:${PORT[$1]}/"
    before="$(cpu_ticks "${PID_OF[$1]}")"
    if [ "$H2" -eq 1 ]; then
        read -r rps p50 p99 errors requests < <(h2load_run "$url" "$2")
    else
        read -r rps p50 p99 errors requests < <(wrk_run "$url" "$2")
    fi
    after="$(cpu_ticks "${PID_OF[$1]}")"
    cpu="$(awk -v t=$((after - before)) -v hz="$TICKS_PER_SECOND" -v n="$requests" \
        'BEGIN { printf "%.2f", (n > 0 ? t / hz * 1e6 / n : 0) }')"
    echo "$rps $p50 $p99 $errors $cpu"
}

echo "== machine: $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
if [ "$H2" -eq 1 ]; then
    LOAD="h2load -t1 -c$CONNECTIONS -m$STREAMS -D $DURATION"
else
    LOAD="wrk -t1 -c$CONNECTIONS -d$DURATION"
fi
echo "== protocol: $PROTOCOL from the client, HTTP/1.1 to the upstream"
if [ "$TLS" -eq 1 ]; then
    for t in "${TARGETS[@]}"; do
        tls="$(openssl s_client -connect "127.0.0.1:${PORT[$t]}" -alpn "$([ "$H2" -eq 1 ] && echo h2 || echo http/1.1)" </dev/null 2>/dev/null |
            awk '/^New, / {v = $2; sub(/,$/, "", v); c = $NF} /^ALPN protocol:/ {a = $3} END {print v, c, "ALPN", (a ? a : "none")}')"
        echo "== tls: $t $tls"
    done
fi
echo "== load: $LOAD, $ROUNDS rounds, targets in turn: ${TARGETS[*]}"
echo "== upstream: holdline-load upstream, delay ${UPSTREAM_DELAY_MS} ms, capacity ${UPSTREAM_CAPACITY:-unlimited}"
if [ "$EQUAL_WORK" -eq 1 ]; then
    echo "== equal work: nginx and haproxy add x-forwarded-for/-proto/-host and x-request-id as the gateway does"
else
    echo "== peer configs as given: only the gateway adds forwarding headers and request ids"
fi
for t in "${TARGETS[@]}"; do
    run_load "$t" 1s >/dev/null # warm-up: connections, caches, the kernel's socket buffers
done
printf '%-6s %-8s %12s %10s %10s %8s %12s\n' round target "req/s" "p50 ms" "p99 ms" non-2xx "cpu us/req"
for round in $(seq 1 "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        read -r rps p50 p99 errors cpu < <(run_load "$t" "$DURATION")
        printf '%-6s %-8s %12.0f %10.3f %10.3f %8s %12s\n' "$round" "$t" "$rps" "$p50" "$p99" "$errors" "$cpu"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$rps" "$p50" "$p99" "$cpu" "$round" >>"$RESULTS"
    done
done

median() { # target column
    awk -F'\t' -v t="$1" -v c="$2" '$1 == t {print $c}' "$RESULTS" | sort -g |
        awk '{v[NR] = $1} END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
echo "== medians"
printf '%-8s %12s %10s %10s %12s\n' target "req/s" "p50 ms" "p99 ms" "cpu us/req"
declare -A MED_RPS MED_P99 MED_CPU
for t in "${TARGETS[@]}"; do
    MED_RPS[$t]="$(median "$t" 2)"
    MED_P99[$t]="$(median "$t" 4)"
    MED_CPU[$t]="$(median "$t" 5)"
    printf '%-8s %12.0f %10.3f %10.3f %12.2f\n' "$t" "${MED_RPS[$t]}" "$(median "$t" 3)" "${MED_P99[$t]}" "${MED_CPU[$t]}"
done
if [ "$SKIP_GATEWAY" -eq 0 ]; then
    echo
    echo "== ratios (gateway / peer): req/s higher is better, p99 and cpu/req lower are better"
    for peer in nginx haproxy; do
        awk -v g="${MED_RPS[gateway]}" -v p="${MED_RPS[$peer]}" -v gl="${MED_P99[gateway]}" -v pl="${MED_P99[$peer]}" \
            -v gc="${MED_CPU[gateway]}" -v pc="${MED_CPU[$peer]}" -v name="$peer" \
            'BEGIN { printf "gateway/%-8s req/s %.3f   p99 %.3f   cpu/req %.3f\n", name, g / p, (pl > 0 ? gl / pl : 0), (pc > 0 ? gc / pc : 0) }'
    done
    # Paired by round (each round measures every target back to back, so they share the
    # machine's state): in how many rounds the gateway did better than each peer, and the
    # two-sided sign test's p-value for "neither is better" (ties left out): a small p says the
    # difference is more than this machine's noise, whichever way it goes.
    echo
    echo "== rounds the gateway did better (paired by round): more req/s, lower p99, lower cpu/req;"
    echo "   p: two-sided sign test"
    for peer in nginx haproxy; do
        awk -F'\t' -v peer="$peer" '
            # P(a split at least as uneven as wins:losses) when each round is a coin flip.
            function sign_p(wins, losses,    n, k, low, c, tail, i) {
                n = wins + losses
                if (n == 0) return 1
                low = wins < losses ? wins : losses
                c = 1; tail = 0
                for (k = 0; k <= low; k++) {
                    tail += c
                    c = c * (n - k) / (k + 1)
                }
                for (i = 0; i < n; i++) tail /= 2
                return 2 * tail > 1 ? 1 : 2 * tail
            }
            $1 == "gateway" { g_rps[$6] = $2; g_p99[$6] = $4; g_cpu[$6] = $5 }
            $1 == peer      { p_rps[$6] = $2; p_p99[$6] = $4; p_cpu[$6] = $5 }
            END {
                for (r in g_rps) if (r in p_rps) {
                    n++
                    rps += g_rps[r] > p_rps[r]; rps_l += g_rps[r] < p_rps[r]
                    p99 += g_p99[r] < p_p99[r]; p99_l += g_p99[r] > p_p99[r]
                    cpu += g_cpu[r] < p_cpu[r]; cpu_l += g_cpu[r] > p_cpu[r]
                }
                printf "gateway vs %-8s req/s %d/%d (p %.2f)   p99 %d/%d (p %.2f)   cpu/req %d/%d (p %.2f)\n", \
                    peer, rps, n, sign_p(rps, rps_l), p99, n, sign_p(p99, p99_l), cpu, n, sign_p(cpu, cpu_l)
            }' "$RESULTS"
    done
fi
