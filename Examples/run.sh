#!/usr/bin/env bash
# Builds the examples and runs each against real parts: a key directory and keyserverd of
# their own (temporary directory, private unix socket), the example echo service with
# RPCSEC_GSS and AUTH_DH, and the rpcgen + libtirpc TESTECHO server for the C-service client.
# As root (the test command), everything runs in a private network and mount namespace
# with its own rpcbind, so the C server registers as a classic service does, the client
# finds it through rpcbind, and AUTH_DH sets its clock from rpcbind's GETTIME; otherwise
# the C server gets a port and the time-host step is skipped. Nothing on the host is touched.
# Ends with "N passed, M failed"; exit status 0 only when nothing failed.
set -euo pipefail
examples="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$examples")"

if [[ $(id -u) == 0 && -z "${EXAMPLES_IN_NAMESPACE:-}" ]] && command -v unshare >/dev/null && command -v rpcbind >/dev/null; then
    exec env EXAMPLES_IN_NAMESPACE=1 unshare -n -m bash "$0" "$@"
fi
rpcbind_pid=
if [[ -n "${EXAMPLES_IN_NAMESPACE:-}" ]]; then
    ip link set lo up
    mount -t tmpfs tmpfs /run
    rpcbind -f &
    rpcbind_pid=$!
    for _ in $(seq 100); do rpcinfo -T local "" 100000 4 >/dev/null 2>&1 && break; sleep 0.05; done
fi

echo "== build: the library's tools, the examples, the C peers"
# quietly: the build's output is shown only when it fails
build() {
    local log
    log=$(mktemp)
    if ! (cd "$1" && shift && swift build "$@") >"$log" 2>&1; then
        cat "$log"; rm -f "$log"; echo "run.sh: the build failed: swift build $*" >&2; exit 1
    fi
    rm -f "$log"
}
for product in keyadmin keyserverd keylogin; do build "$root" --product "$product"; done
bin=$(cd "$root" && swift build --show-bin-path)
build "$examples"
examples_bin=$(cd "$examples" && swift build --show-bin-path)

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}" $rpcbind_pid; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
bash "$root/Tests/CPeers/build.sh" "$work/cpeers" >/dev/null

passed=0
failed=0
# expect NAME PATTERN COMMAND...: runs COMMAND; passes when it succeeds and prints PATTERN.
expect() {
    local name=$1 pattern=$2
    shift 2
    local out
    if out=$("$@" 2>&1) && grep -q -- "$pattern" <<<"$out"; then
        echo "ok: $name"
        sed 's/^/    /' <<<"$out"
        passed=$((passed + 1))
    else
        echo "FAILED: $name (wanted \"$pattern\")"
        sed 's/^/    /' <<<"$out"
        failed=$((failed + 1))
    fi
}
# wait_for FILE TEXT: until a daemon's log says it is ready.
wait_for() {
    for _ in $(seq 150); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "not ready: $1"; cat "$1"; return 1
}

domain=examples.test
if [[ $(id -u) == 0 ]]; then who=(--host "$(hostname -s)"); me="unix.$(hostname -s)@$domain"
else who=(--user "$(id -u)"); me="unix.$(id -u)@$domain"; fi
echo "== a key directory and keyserver of our own; keylogin as $me (the server uses the same key)"
printf 'examples-password\n' >"$work/password"
printf 'examples-legacy-password\n' >"$work/legacy-password"
"$bin/keyadmin" init --db "$work/keys.db" >/dev/null
"$bin/keyadmin" newkey --db "$work/keys.db" "${who[@]}" --domain "$domain" --mechanism ffdhe3072 \
    --mechanism dh192-des --password-file "$work/password" --legacy-password-file "$work/legacy-password" >/dev/null
"$bin/keyadmin" export --db "$work/keys.db" --format publickey -o "$work/publickey"
"$bin/keyserverd" --socket "$work/keyservsock" --root-key "$work/rootkey" --no-rpcbind --log-level notice \
    >"$work/keyserverd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -S "$work/keyservsock" ]] && break; sleep 0.1; done
cat "$work/password" "$work/legacy-password" |
    "$bin/keylogin" --db "$work/keys.db" --netname "$me" --socket "$work/keyservsock" --password-stdin >/dev/null

echo "== echo-server and echo-client (Sources/EchoInterface/echo.x)"
port=${EXAMPLES_PORT:-20301}
"$examples_bin/echo-server" --netname "$me" --directory "$work/keys.db" --keyserver-socket "$work/keyservsock" \
    --domain "$domain" --port "$port" --allow-dh >"$work/echo-server.log" 2>&1 &
pids+=($!)
wait_for "$work/echo-server.log" "serving"
client=("$examples_bin/echo-client" --server "$me" --domain "$domain" --port "$port"
    --directory "$work/keys.db" --keyserver-socket "$work/keyservsock")
expect "RPCSEC_GSS privacy over TCP" "via srpc-dh ffdhe3072/privacy" "${client[@]}" "hello over gss"
expect "RPCSEC_GSS privacy over UDP" "via srpc-dh ffdhe3072/privacy" "${client[@]}" --udp "hello over udp"
expect "AUTH_DH, the server's key from a publickey file" "via dh192-des" \
    "${client[@]}" --auth dh --publickey-file "$work/publickey" "hello over dh"
if [[ -n "$rpcbind_pid" ]]; then
    expect "AUTH_DH with the clock from rpcbind's GETTIME" "via dh192-des" \
        "${client[@]}" --auth dh --time-host 127.0.0.1 "hello with a time host"
fi
expect "AUTH_SYS (unproven) refused: secure by default" "AUTH_TOOWEAK" bash -c '! "$@"' _ "${client[@]}" --auth sys "hello unproven"
expect "a server netname with no key: a clear error" "no ffdhe3072 public key for the server" \
    bash -c '! "$@"' _ "${client[@]/#$me/unix.nobody@$domain}" "to nobody"

echo "== c-service-client and the rpcgen + libtirpc TESTECHO server"
if [[ -n "$rpcbind_pid" ]]; then
    "$work/cpeers/echo_server" -r >"$work/c-server.log" 2>&1 &
    pids+=($!)
    wait_for "$work/c-server.log" "ready"
    located=()
else
    "$work/cpeers/echo_server" -p "$((port + 1))" -U "$((port + 1))" >"$work/c-server.log" 2>&1 &
    pids+=($!)
    wait_for "$work/c-server.log" "ready"
    located=(--port "$((port + 1))")
fi
expect "the C service over TCP" "the C server saw uid $(id -u)" "$examples_bin/c-service-client" "${located[@]}" "hello, C"
expect "the C service over UDP" "the C server saw uid $(id -u)" "$examples_bin/c-service-client" "${located[@]}" --udp "hello, C"

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
