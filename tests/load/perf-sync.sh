#!/usr/bin/env bash
# Where the sync proxy's CPU goes, per request, with nginx measured the same way in the same run.
# The gateway (release, workers = 1) and nginx (the peer config, one worker) proxy to the trivial
# upstream (`holdline-load upstream`); each in turn is driven by `wrk -t1 -c50` while
# `perf record -e cpu-clock` samples the proxy's process, for several alternated rounds. Per
# request it prints the proxy's sampled time in the kernel and in user space, and for the gateway
# the part of its own code's samples that fell on an atomic read-modify-write (a `lock`-prefixed
# instruction, or the one after it, where a sample skids), with the functions they fell in.
# Sampling inflates every figure by itself: compare the two targets, not absolute values.
#
# Usage: tests/load/perf-sync.sh [--rounds 3] [--duration 6] [--peers DIR] [GATEWAY_BINARY]
#        (default binary: build target/release/gateway)
# Needs perf (Debian's linux-perf), nginx, wrk, objdump and python3; installs the Debian
# packages when run as root.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEERS="${PEERS:-$ROOT/tests/load/peers}"
ROUNDS=3
DURATION=6
BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --peers) PEERS="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) BIN="$1"; shift ;;
    esac
done
# shellcheck source=tests/load/lib.sh
source "$ROOT/tests/load/lib.sh"
require_tools perf nginx wrk objdump python3
[ -f "$PEERS/nginx.conf" ] || { echo "missing $PEERS/nginx.conf (set --peers DIR)" >&2; exit 2; }
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build-bins --release --quiet)
    BIN="$ROOT/target/release/gateway"
fi
BIN="$(realpath "$BIN")" # perf names the binary by its full path
LOAD_BIN="$ROOT/target/release/holdline-load"
[ -x "$LOAD_BIN" ] || { echo "missing $LOAD_BIN (cargo build-bins --release)" >&2; exit 2; }
NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"

start_work
UP=28580 NGINX=28581 GATEWAY=28583
"$LOAD_BIN" upstream --listen "127.0.0.1:$UP" >"$WORK/upstream.log" 2>&1 & PIDS+=($!)
wait_port $UP
sed -e "s|/tmp/lab-nginx.pid|$WORK/nginx.pid|" \
    -e "s|/tmp/lab-nginx-error.log|$WORK/nginx-error.log|" \
    -e "s|127.0.0.1:18081|127.0.0.1:$NGINX|" \
    -e "s|127.0.0.1:18080|127.0.0.1:$UP|" \
    "$PEERS/nginx.conf" >"$WORK/nginx.conf"
nginx -p "$WORK" -c "$WORK/nginx.conf" >"$WORK/nginx.log" 2>&1 & PIDS+=($!)
plain_gateway_config $GATEWAY $UP >"$WORK/gateway.toml"
RUST_LOG=warn "$BIN" --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>&1 & PIDS+=($!)
GATEWAY_PID=$!
wait_port $NGINX
wait_port $GATEWAY
NGINX_PID="$(pgrep -P "${PIDS[1]}" | head -1)" # the worker (the peer config has a master)
[ -n "$NGINX_PID" ] || NGINX_PID="${PIDS[1]}"

# sample NAME PID PORT ROUND: perf of PID while wrk drives PORT; writes the samples and the rate.
sample() {
    local name="$1" pid="$2" port="$3" round="$4" wrk_pid
    wrk -t1 -c50 -d1s "http://127.0.0.1:$port/" >/dev/null
    wrk -t1 -c50 -d"$((DURATION + 2))s" "http://127.0.0.1:$port/" >"$WORK/wrk.$name.$round" &
    wrk_pid=$!
    sleep 1
    perf record -q -e cpu-clock -F 4999 -p "$pid" -o "$WORK/perf.$name.$round" -- sleep "$DURATION" 2>/dev/null
    wait "$wrk_pid"
    perf script -i "$WORK/perf.$name.$round" -F ip,sym,symoff,dso 2>/dev/null |
        grep -v '^$' | sed -E 's/^\s+[0-9a-f]+ //' >"$WORK/samples.$name.$round"
    awk '/Requests\/sec/ {print $2}' "$WORK/wrk.$name.$round" >"$WORK/rate.$name.$round"
}

echo "== machine: $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
echo "== wrk -t1 -c50, perf -F 4999 for ${DURATION}s per target, $ROUNDS rounds: gateway nginx"
for round in $(seq 1 "$ROUNDS"); do
    sample gateway "$GATEWAY_PID" $GATEWAY "$round"
    sample nginx "$NGINX_PID" $NGINX "$round"
done
objdump -d --no-show-raw-insn "$BIN" |
    awk '/^ +[0-9a-f]+:/ { a = $1; sub(":", "", a); if (after) print a; if ($0 ~ /\tlock /) print a; after = ($0 ~ /\tlock /) }' \
        >"$WORK/locked"
nm -C "$BIN" >"$WORK/symbols"

python3 - "$WORK" "$ROUNDS" "$DURATION" "$BIN" "$NGINX_BIN" <<'PY'
import collections, re, statistics, sys
work, rounds, duration, gateway, nginx = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
address = {}
for line in open(f"{work}/symbols"):
    parts = line.rstrip("\n").split(" ", 2)
    if len(parts) == 3 and parts[0]:
        address.setdefault(parts[2], int(parts[0], 16))
locked = {int(a, 16) for a in open(f"{work}/locked")}
sample = re.compile(r"(.*) \((.*)\)$")
offset = re.compile(r"(.*)\+0x([0-9a-f]+)$")

def split(name, round_):
    rate = float(open(f"{work}/rate.{name}.{round_}").read() or 0)
    per_request = 1e6 / 4999 / (rate * duration)  # us of CPU per sample, per request
    kernel = user = atomic = 0
    sites = collections.Counter()
    for line in open(f"{work}/samples.{name}.{round_}"):
        m = sample.match(line.strip())
        if not m:
            continue
        symbol, dso = m.groups()
        if "kernel" in dso:
            kernel += 1
            continue
        user += 1
        if name == "gateway" and dso == gateway:
            o = offset.match(symbol)
            if o and o.group(1) in address and address[o.group(1)] + int(o.group(2), 16) in locked:
                atomic += 1
                sites[o.group(1)[:100]] += 1
    f = lambda n: n * per_request
    return rate, f(kernel), f(user), f(atomic), {s: f(n) for s, n in sites.items()}

print(f"{'round':<6} {'target':<8} {'req/s':>8} {'kernel us':>10} {'user us':>8} {'atomic us':>10}")
table = collections.defaultdict(list)
sites = collections.Counter()
for r in range(1, rounds + 1):
    for name in ("gateway", "nginx"):
        rate, kernel, user, atomic, where = split(name, r)
        table[name].append((rate, kernel, user, atomic))
        sites.update(where)
        shown = f"{atomic:10.3f}" if name == "gateway" else f"{'-':>10}"
        print(f"{r:<6} {name:<8} {rate:8.0f} {kernel:10.3f} {user:8.3f} {shown}")
print("\n== medians (us of sampled CPU per request)")
for name, rows in table.items():
    med = [statistics.median(col) for col in zip(*rows)]
    atomic = f", atomic {med[3]:.3f}" if name == "gateway" else ""
    print(f"{name:<8} kernel {med[1]:.3f}, user {med[2]:.3f}, total {med[1] + med[2]:.3f}{atomic}")
print("\n== the gateway's atomic operations by function (ns per request, mean over rounds)")
for site, us in sites.most_common(12):
    print(f"{us / rounds * 1000:7.1f}  {site}")
PY
