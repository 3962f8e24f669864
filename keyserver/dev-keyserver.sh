#!/usr/bin/env bash
# Starts keyserverd for development: a socket in a temporary directory, no rpcbind, logs to
# the terminal. Stop with Ctrl-C (the keyserver wipes every secret on the way out).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product keyserverd >/dev/null
dir=$(mktemp -d)
echo "socket: $dir/keyservsock   (use: keylogin --socket $dir/keyservsock ...)"
exec "$(swift build --show-bin-path)/keyserverd" --socket "$dir/keyservsock" --root-key "$dir/rootkey" --no-rpcbind --log-level info
