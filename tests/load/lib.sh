# Helpers shared by the benchmark scripts of tests/load (sourced, not run).
#
#   require_tools TOOL...   installs the missing ones from Debian's packages (the package of the
#                           tool's name, except perf: linux-perf, objdump: binutils, h2load:
#                           nghttp2-client); needs root
#   start_work              makes $WORK (a temporary directory) and $PIDS; on exit every PID in
#                           $PIDS is killed and waited for, and $WORK removed
#   port_busy PORT          whether something listens on 127.0.0.1:PORT
#   wait_port PORT [SECS]   waits up to SECS (10) seconds for a listener on 127.0.0.1:PORT, else
#                           exits
#   plain_gateway_config PORT UPSTREAM_PORT
#                           prints a gateway config: one worker on 127.0.0.1:PORT, no admin
#                           listener, everything proxied to 127.0.0.1:UPSTREAM_PORT
#   test_cert DIR           writes a throwaway CA (DIR/ca.pem) and an ECDSA P-256 certificate it
#                           signed for 127.0.0.1 and localhost, valid for two days: DIR/cert.pem,
#                           its key DIR/key.pem (PKCS#8), and both in DIR/cert-key.pem (haproxy)

require_tools() {
    local missing=() tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$(package_of "$tool")")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "missing ${missing[*]}: install with 'sudo apt-get install ${missing[*]}'" >&2
            exit 2
        fi
        echo "== installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    export PATH="$PATH:/usr/sbin"
}

# The Debian package that provides TOOL.
package_of() {
    case "$1" in
        perf) echo linux-perf ;;
        objdump) echo binutils ;;
        h2load) echo nghttp2-client ;;
        *) echo "$1" ;;
    esac
}

start_work() {
    WORK="$(mktemp -d /tmp/holdline-bench.XXXXXX)"
    PIDS=()
    trap stop_work EXIT
}

stop_work() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local seconds="${2:-10}"
    for _ in $(seq 1 $((seconds * 50))); do
        port_busy "$1" && return 0
        sleep 0.02
    done
    echo "nothing listens on 127.0.0.1:$1 after $seconds s; logs in $WORK" >&2
    exit 1
}

plain_gateway_config() {
    cat <<TOML
workers = 1
[listen]
http = "127.0.0.1:$1"
[admin]
listen = "off"
[services.up]
endpoints = ["http://127.0.0.1:$2"]
[[routes]]
prefix = "/"
service = "up"
TOML
}

test_cert() {
    local dir="$1"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -days 2 \
        -subj "/CN=holdline benchmark CA" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -subj "/CN=127.0.0.1" \
        -keyout "$dir/key.pem" -out "$dir/cert.csr" 2>/dev/null
    printf '%s\n' "subjectAltName = IP:127.0.0.1, DNS:localhost" "basicConstraints = CA:FALSE" \
        "keyUsage = digitalSignature" "extendedKeyUsage = serverAuth" >"$dir/cert.ext"
    openssl x509 -req -in "$dir/cert.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
        -CAcreateserial -days 2 -extfile "$dir/cert.ext" -out "$dir/cert.pem" 2>/dev/null
    cat "$dir/cert.pem" "$dir/key.pem" >"$dir/cert-key.pem"
}
