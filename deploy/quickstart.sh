#!/usr/bin/env bash
# The main job on a fresh machine: install what the build needs, build, create a key
# directory (embedded SQLite) with a key pair for you, start the keyserver, log in to it,
# start the example file service on its defaults — RPCSEC_GSS with the srpc-dh mechanism,
# ffdhe3072, privacy — and make authenticated, encrypted calls to it: the server log shows
# the proven netname and mechanism of every call. The legacy AUTH_DH is shown once, refused
# by the default policy. Everything runs from a temporary directory on loopback and a
# private unix socket, and is stopped on exit.
#
# The file server runs as you too, so it uses your key as its own (server netname = yours);
# on a real site the server has its own host principal, logged in as its own uid.
set -euo pipefail
cd "$(dirname "$0")/.."

bash Tests/install-deps.sh
for product in keyadmin keyserverd keylogin keylogout keylist filesvc-server filesvc; do
    swift build -c release --product "$product"
done
bin=$(swift build -c release --show-bin-path)

work=$(mktemp -d)
chmod 755 "$work"
port=${FILESVC_PORT:-20049}
domain=quickstart.example
cleanup() {
    [[ -n "${server_pid:-}" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    [[ -n "${keyserver_pid:-}" ]] && kill "$keyserver_pid" 2>/dev/null && wait "$keyserver_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Root speaks as the host (unix.HOST@DOMAIN, as Sun's host2netname does): every host has a
# key of its own. Anyone else speaks as unix.UID@DOMAIN.
if [[ $(id -u) == 0 ]]; then
    who=(--host "$(hostname -s)"); me="unix.$(hostname -s)@$domain"
else
    who=(--user "$(id -u)"); fi
echo "== a key directory with a key pair for $me"
echo "quickstart-password" > "$work/password"
# The legacy dh192-des key gets a password of its own: its DES sealing is guessable offline
# and must not give away the strong keys' password (docs/DIRECTORY.md).
echo "quickstart-legacy-password" > "$work/legacy-password"
"$bin/keyadmin" init --db "$work/keys.db"
"$bin/keyadmin" newkey --db "$work/keys.db" "${who[@]}" --domain "$domain" \
    --mechanism ffdhe3072 --mechanism ffdhe4096 --mechanism dh192-des --password-file "$work/password" \
    --legacy-password-file "$work/legacy-password"
"$bin/keyadmin" list --db "$work/keys.db"

echo "== the keyserver, and keylogin"
"$bin/keyserverd" --socket "$work/keyservsock" --root-key "$work/rootkey" --no-rpcbind --log-level notice \
    >"$work/keyserverd.log" 2>&1 &
keyserver_pid=$!
for _ in $(seq 50); do [[ -S "$work/keyservsock" ]] && break; sleep 0.1; done
# Two lines on stdin: the strong keys' password, then the legacy key's.
cat "$work/password" "$work/legacy-password" |
    "$bin/keylogin" --db "$work/keys.db" --netname "$me" --socket "$work/keyservsock" --password-stdin
# What the keyserver now holds for you (klist's role): netname, mechanisms, since when.
"$bin/keylist" --socket "$work/keyservsock"

echo "== the example file service on 127.0.0.1:$port (default: RPCSEC_GSS, ffdhe3072+, privacy)"
mkdir -p "$work/root"
"$bin/filesvc-server" --root "$work/root" --host 127.0.0.1 --port "$port" --netname "$me" \
    --db "$work/keys.db" --keyserver-socket "$work/keyservsock" --log-level info >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    grep -q "serving" "$work/server.log" 2>/dev/null && break
    sleep 0.2
done
echo "hello from $(id -un)" > "$work/hello.txt"
export SECURERPC_SERVER="$me" SECURERPC_DB="$work/keys.db"
ks=(--port "$port" --netname "$me" --keyserver-socket "$work/keyservsock")
set -x
"$bin/filesvc" put "${ks[@]}" "$work/hello.txt" /hello.txt
"$bin/filesvc" ls "${ks[@]}" /
"$bin/filesvc" cat "${ks[@]}" /hello.txt
"$bin/filesvc" stat "${ks[@]}" --transport udp /hello.txt
"$bin/filesvc" cat "${ks[@]}" --group ffdhe4096 --transport udp /hello.txt
"$bin/filesvc" ls "${ks[@]}" --service integrity / || echo "(integrity only: below the server's policy, refused)"
"$bin/filesvc" cat "${ks[@]}" --auth dh /hello.txt || echo "(legacy AUTH_DH: below the server's policy, refused)"
"$bin/filesvc" cat --port "$port" --auth sys /hello.txt || echo "(AUTH_SYS refused, as it should be)"
"$bin/filesvc" rm "${ks[@]}" /hello.txt
set +x

echo "== keylogout"
if [[ $(id -u) -eq 0 ]]; then
    "$bin/keylogout" -f --socket "$work/keyservsock"
else
    "$bin/keylogout" --socket "$work/keyservsock"
fi
# Exit status 1: not logged in any more.
"$bin/keylist" --socket "$work/keyservsock" || echo "(keylist: exit status $?)"
echo "== server log"
cat "$work/server.log"
echo "== keyserver log"
cat "$work/keyserverd.log"
