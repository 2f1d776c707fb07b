#!/usr/bin/env bash
# Holdline quick start: one command for a complete local system. It builds the gateway and
# example-echo (release), starts a private redis-server on a free port (or uses $REDIS_URL), two
# example-echo instances and the gateway with config/quickstart.toml, prints what to try, and
# stops everything on Ctrl-C.
#
# Usage: scripts/quickstart.sh [--free-ports] [--check]
#   --free-ports  listen on free ports instead of the ones in config/quickstart.toml (8080 for
#                 the gateway, 9901 for its admin, 18080 and 18083 for the instances)
#   --check       start everything on free ports, send one call through the sync path and
#                 calls through the queue (held, and respond-async with a result fetch), stop,
#                 and exit 0 if all of it worked, 1 if not. For CI. QUICKSTART_CHECK=1 too.
#
# Environment:
#   REDIS_URL           use this Redis server instead of starting a private one
#   QUICKSTART_PROFILE  cargo profile to build and run: release (default) or dev
#   QUICKSTART_BIN_DIR  run the gateway and example-echo found there, building nothing
#   CARGO_TARGET_DIR    where cargo puts the binaries, if not ./target
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONFIG="$ROOT/config/quickstart.toml"
CHECK="${QUICKSTART_CHECK:-0}"
PROFILE="${QUICKSTART_PROFILE:-release}"
# The instances are deliberately small (4 calls at once, 100 ms each) so that a burst of a few
# dozen calls overflows them and the queue failover can be seen.
ECHO_CONCURRENCY=4
ECHO_WORK_MS=100

FREE_PORTS=0
for arg in "$@"; do
    case "$arg" in
        --check) CHECK=1 ;;
        --free-ports) FREE_PORTS=1 ;;
        -h|--help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done
# A check must not collide with whatever else runs on the machine.
[ "$CHECK" = 1 ] && FREE_PORTS=1

say() { printf '%s\n' "$*"; }
fail() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# --- prerequisites, before anything slow ----------------------------------------------------
command -v cargo >/dev/null || fail "cargo is not installed: see https://rustup.rs"
command -v curl >/dev/null || fail "curl is not installed: install it with 'sudo apt-get install curl'"
if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
    cat >&2 <<'EOF'
quickstart: redis-server is not installed. Install it with

    sudo apt-get install redis-server     # Debian, Ubuntu
    brew install redis                    # macOS

or point the quick start at a running server: REDIS_URL=redis://host:6379 scripts/quickstart.sh
EOF
    exit 1
fi
case "$PROFILE" in
    release) PROFILE_DIR=release ;;
    dev|debug) PROFILE=dev; PROFILE_DIR=debug ;;
    *) fail "QUICKSTART_PROFILE must be release or dev, not $PROFILE" ;;
esac

# --- ports ----------------------------------------------------------------------------------
# Whether something accepts connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

TAKEN=" "
# A port nothing listens on and this script has not handed out yet.
free_port() {
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 40000))
        if [[ "$TAKEN" != *" $port "* ]] && ! port_busy "$port"; then
            TAKEN+="$port "
            echo "$port"
            return 0
        fi
    done
    fail "no free port found"
}

# The addresses config/quickstart.toml uses: the gateway's listener and admin listener, and the
# two echo endpoints.
section_value() { sed -n "/^\[$1\]/,/^\[/{s/^$2 = \"\(.*\)\"/\1/p}" "$CONFIG" | head -n 1; }
GW_ADDR="$(section_value listen http)"
ADMIN_ADDR="$(section_value admin listen)"
mapfile -t ECHO_ADDRS < <(sed -n '/^\[services\.echo\]/,/^\[/{/^endpoints/p}' "$CONFIG" \
    | grep -o 'http://[0-9.]*:[0-9]*' | sed 's|http://||')
[ -n "$GW_ADDR" ] && [ -n "$ADMIN_ADDR" ] && [ "${#ECHO_ADDRS[@]}" -eq 2 ] \
    || fail "cannot read the listeners and the two echo endpoints from $CONFIG"

# Fixed ports that are taken make the start fail; say so before a long build.
fixed_ports_free() {
    local port
    for port in "${GW_ADDR##*:}" "${ADMIN_ADDR##*:}" "${ECHO_ADDRS[0]##*:}" "${ECHO_ADDRS[1]##*:}"; do
        port_busy "$port" && fail "port $port (from $CONFIG) is already in use; stop what uses it, or run with --free-ports"
    done
    return 0
}
[ "$FREE_PORTS" = 1 ] || fixed_ports_free

# --- build ----------------------------------------------------------------------------------
if [ -n "${QUICKSTART_BIN_DIR:-}" ]; then
    BIN="$QUICKSTART_BIN_DIR"
else
    say "== building the gateway, example-echo and the load tool ($PROFILE)"
    (cd "$ROOT" && cargo build-bins --profile "$PROFILE")
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE_DIR"
fi
[ -x "$BIN/gateway" ] && [ -x "$BIN/example-echo" ] || fail "built binaries not found in $BIN"

# --- lifecycle ------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/holdline-quickstart.XXXXXX")"
# Started processes, in start order; stopped in reverse order so nothing loses what it needs
# while draining (the gateway before the instances, the instances before Redis).
PIDS=()
NAMES=()
STOPPING=0

# Starts a process in its own session, so Ctrl-C reaches only this script, which then stops
# the processes in order.
start() {
    local name="$1"
    shift
    if command -v setsid >/dev/null; then
        setsid "$@" >"$TMP/$name.log" 2>&1 </dev/null &
    else
        "$@" >"$TMP/$name.log" 2>&1 </dev/null &
    fi
    PIDS+=("$!")
    NAMES+=("$name")
}

# shellcheck disable=SC2329  # invoked by the EXIT trap
stop_all() {
    local status=$?
    [ "$STOPPING" = 1 ] && return
    STOPPING=1
    # A second Ctrl-C must not cut the cleanup short and leave processes behind.
    trap "" INT TERM
    local i pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid="${PIDS[$i]}"
        kill -TERM "$pid" 2>/dev/null || continue
        # Bounded wait for a graceful exit, then force.
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "${NAMES[$i]} did not stop within 10 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    # The logs stay for a look afterwards, except after a check that passed.
    if [ "$CHECK" = 1 ] && [ "$status" = 0 ]; then
        rm -rf "$TMP"
    else
        say "logs kept in $TMP"
    fi
    return "$status"
}
trap stop_all EXIT
trap 'say ""; say "== stopping"; exit 0' INT TERM

# Dumps the logs, for when something did not come up or a check failed.
show_logs() {
    local log
    for log in "$TMP"/*.log; do
        [ -f "$log" ] || continue
        echo "---- $(basename "$log") (last 20 lines)" >&2
        tail -n 20 "$log" >&2
    done
}

# Polls an URL until it answers 200, for at most $2 seconds.
wait_ok() {
    local url="$1" seconds="$2"
    for _ in $(seq $((seconds * 10))); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

# --- ports: the config's, or free ones ----------------------------------------------------
if [ "$FREE_PORTS" = 1 ]; then
    GW_PORT="$(free_port)"; ADMIN_PORT="$(free_port)"
    ECHO_PORTS=("$(free_port)" "$(free_port)")
else
    GW_PORT="${GW_ADDR##*:}"; ADMIN_PORT="${ADMIN_ADDR##*:}"
    ECHO_PORTS=("${ECHO_ADDRS[0]##*:}" "${ECHO_ADDRS[1]##*:}")
    fixed_ports_free
fi
ECHO_ADMIN_PORTS=("$(free_port)" "$(free_port)")

# --- redis ----------------------------------------------------------------------------------
if [ -n "${REDIS_URL:-}" ]; then
    REDIS="$REDIS_URL"
    say "== using Redis at $REDIS"
else
    REDIS_PORT="$(free_port)"
    REDIS="redis://127.0.0.1:$REDIS_PORT"
    say "== starting redis-server on port $REDIS_PORT"
    start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
        --appendonly no --dir "$TMP"
    for _ in $(seq 100); do port_busy "$REDIS_PORT" && break; sleep 0.1; done
    port_busy "$REDIS_PORT" || { show_logs; fail "redis-server did not start"; }
fi

# --- the gateway's config: a copy with the real Redis URL (and ports) -----------------------
GW_CONFIG="$TMP/quickstart.toml"
sed -e "s|^url = \".*\"|url = \"$REDIS\"|" \
    -e "s|\"$GW_ADDR\"|\"127.0.0.1:$GW_PORT\"|" \
    -e "s|\"$ADMIN_ADDR\"|\"127.0.0.1:$ADMIN_PORT\"|" \
    -e "s|http://${ECHO_ADDRS[0]}\"|http://127.0.0.1:${ECHO_PORTS[0]}\"|" \
    -e "s|http://${ECHO_ADDRS[1]}\"|http://127.0.0.1:${ECHO_PORTS[1]}\"|" \
    "$CONFIG" >"$GW_CONFIG"
"$BIN/gateway" check-config "$GW_CONFIG" >/dev/null || fail "the generated config is invalid"

# --- the instances and the gateway ----------------------------------------------------------
for i in 0 1; do
    say "== starting example-echo echo-$((i + 1)) on 127.0.0.1:${ECHO_PORTS[$i]}"
    start "echo-$((i + 1))" env NO_COLOR=1 RUST_LOG="${RUST_LOG:-info}" "$BIN/example-echo" \
        --listen "127.0.0.1:${ECHO_PORTS[$i]}" --admin "127.0.0.1:${ECHO_ADMIN_PORTS[$i]}" \
        --redis "$REDIS" --service echo --instance "echo-$((i + 1))" \
        --concurrency "$ECHO_CONCURRENCY" --work-ms "$ECHO_WORK_MS"
done
for i in 0 1; do
    wait_ok "http://127.0.0.1:${ECHO_ADMIN_PORTS[$i]}/readyz" 30 \
        || { show_logs; fail "echo-$((i + 1)) is not ready after 30 s (is Redis at $REDIS reachable?)"; }
done
say "== starting the gateway on 127.0.0.1:$GW_PORT"
start gateway env RUST_LOG="${RUST_LOG:-info}" "$BIN/gateway" --config "$GW_CONFIG"
wait_ok "http://127.0.0.1:$ADMIN_PORT/readyz" 30 || { show_logs; fail "the gateway is not ready after 30 s"; }

URL="http://127.0.0.1:$GW_PORT"
METRICS="http://127.0.0.1:$ADMIN_PORT/metrics"

# --- --check: prove both paths work, then stop ----------------------------------------------
# One call with curl; prints the status, leaves the headers and body in $TMP.
call() { curl -s --max-time 60 -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' "$@"; }
# The last value of a response header, from file $2 (default: the last call's headers).
header() { tr -d '\r' <"${2:-$TMP/headers}" | grep -i "^$1:" | tail -n 1 | cut -d ' ' -f 2-; }

check_sync() {
    local status
    status="$(call -H 'x-request-id: qs-sync' -d 'hello sync' "$URL/echo/check")"
    if [ "$status" = 200 ] && [ "$(header holdline-path)" = sync ] \
        && grep -q '"body":"hello sync"' "$TMP/body" && grep -q '"via":"http"' "$TMP/body"; then
        say "ok: sync call answered directly by $(grep -o '"instance":"[^"]*"' "$TMP/body")"
    else
        say "sync call: status $status, holdline-path '$(header holdline-path)', body $(cat "$TMP/body")"
        return 1
    fi
}

# A burst of calls at five times the instances' capacity: every call must get its own answer
# back. Prints how many came through the queue.
burst() {
    local round="$1" dir="$TMP/burst-$1" n queued=0
    mkdir -p "$dir"
    seq 40 | xargs -P 40 -I{} curl -s --max-time 60 -o "$dir/{}.body" -D "$dir/{}.headers" \
        -H "x-request-id: qs-$round-{}" -d "burst $round call {}" "$URL/echo/burst" || true
    for n in $(seq 40); do
        if ! grep -q "\"body\":\"burst $round call $n\"" "$dir/$n.body" 2>/dev/null; then
            say "burst call $n: wrong or no answer: $(cat "$dir/$n.body" 2>/dev/null)" >&2
            return 1
        fi
        if [ "$(header holdline-path "$dir/$n.headers")" = queue ]; then
            queued=$((queued + 1))
        fi
    done
    echo "$queued"
}

# Asks for an asynchronous answer (honoured for a queue-enabled service whatever its mode: the
# call goes to the queue and the client gets 202 at once), then fetches the result.
check_async() {
    local status location
    status="$(call -H 'prefer: respond-async' -H 'x-request-id: qs-async' -d 'hello async' "$URL/echo/async")"
    location="$(header location)"
    if [ "$status" != 202 ] || [ -z "$location" ]; then
        say "respond-async call: status $status, location '$location'"
        return 1
    fi
    for _ in $(seq 60); do
        status="$(call "$URL$location")"
        [ "$status" = 202 ] || break
        sleep 0.5
    done
    if [ "$status" = 200 ] && [ "$(header holdline-path)" = async ] \
        && grep -q '"body":"hello async"' "$TMP/body" && grep -q '"via":"queue"' "$TMP/body"; then
        say "ok: respond-async call accepted (202) and its result fetched from $location"
    else
        say "result fetch $location: status $status, body $(cat "$TMP/body")"
        return 1
    fi
}

if [ "$CHECK" = 1 ]; then
    say "== checking the quick start"
    check_sync || { show_logs; fail "check failed: sync path"; }
    # The queue path needs a burst that really overflows the instances, so allow a few rounds
    # (bounded) on a machine too loaded to send 40 calls at once.
    check_async || { show_logs; fail "check failed: respond-async and result fetch"; }
    done_queue=0
    for round in 1 2 3; do
        queued="$(burst "$round")" || { show_logs; fail "check failed: burst $round"; }
        if [ "$queued" -gt 0 ]; then
            say "ok: a burst of 40 calls all answered, $queued of them held and answered through the queue"
            done_queue=1
            break
        fi
        say "burst $round: no call needed the queue; again"
    done
    [ "$done_queue" = 1 ] || { show_logs; fail "check failed: no call went through the queue in 3 bursts"; }
    say "== quick start check passed"
    exit 0
fi

# --- interactive: say what to try, then follow the gateway's log until Ctrl-C ---------------
cat <<TRY

Holdline is running:
  gateway     $URL   (config: $GW_CONFIG)
  metrics     $METRICS
  instances   echo-1 on 127.0.0.1:${ECHO_PORTS[0]}, echo-2 on 127.0.0.1:${ECHO_PORTS[1]}
              ($ECHO_CONCURRENCY calls at once each, ${ECHO_WORK_MS} ms per call)
  redis       $REDIS

Try:
  # A call through the gateway, answered directly by an instance (holdline-path: sync):
  curl -i -d 'hello' $URL/echo/hello

  # A burst past the instances' capacity: the overflow is held and answered through the queue.
  seq 40 | xargs -P 40 -I{} curl -s -o /dev/null -D - -d 'call {}' $URL/echo/burst \\
    | tr -d '\r' | grep -i '^holdline-path' | sort | uniq -c

  # Prefer: respond-async: the call goes to the queue and 202 Accepted with a Location comes
  # back at once (for a queue-enabled service, in whatever mode it is):
  curl -i -H 'Prefer: respond-async' -d 'later' $URL/echo/job
  # Then fetch the result from that Location (202 while pending, then the answer):
  curl -i $URL/_holdline/results/echo/ID

  # The gateway's metrics (mode per service, queue depth, hold times):
  curl -s $METRICS | grep '^holdline_'

Logs are in $TMP (kept when you stop). The gateway's log follows; press Ctrl-C to stop
everything.

TRY
tail -n 0 -F "$TMP/gateway.log" &
PIDS+=("$!")
NAMES+=(tail)
# Returns when a process exits on its own (a crash); Ctrl-C runs the trap instead.
wait -n || true
for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || say "quickstart: ${NAMES[$i]} exited unexpectedly" >&2
done
show_logs
exit 1
