#!/usr/bin/env bash
# The main job on a fresh machine: install what the build needs, build, start the example
# file service on loopback, and make calls to it with the client CLI. Everything it starts
# runs from a temporary directory and is stopped on exit.
#
# As the project grows (keyserver, directory, AUTH_DH, RPCSEC_GSS), this script grows with
# it: create keys, start keyserverd, keylogin, and make an authenticated call.
set -euo pipefail
cd "$(dirname "$0")/.."

bash Tests/install-deps.sh
swift build -c release --product filesvc-server
swift build -c release --product filesvc
bin=$(swift build -c release --show-bin-path)

work=$(mktemp -d)
port=${FILESVC_PORT:-20049}
cleanup() {
    [[ -n "${server_pid:-}" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/root"
"$bin/filesvc-server" --root "$work/root" --host 127.0.0.1 --port "$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    "$bin/filesvc" ping --port "$port" >/dev/null 2>&1 && break
    sleep 0.2
done

echo "== calls to the example file service on 127.0.0.1:$port"
echo "hello from $(id -un)" > "$work/hello.txt"
set -x
"$bin/filesvc" ping --port "$port"
"$bin/filesvc" put --port "$port" "$work/hello.txt" /hello.txt
"$bin/filesvc" ls --port "$port" /
"$bin/filesvc" cat --port "$port" /hello.txt
"$bin/filesvc" stat --port "$port" --transport udp /hello.txt
"$bin/filesvc" rm --port "$port" /hello.txt
"$bin/filesvc" ls --port "$port" /
set +x
echo "== server log"
cat "$work/server.log"
