#!/usr/bin/env bash
# Runs inside `unshare -n -m`: a private loopback and a private /run, so the rpcbind started
# here is the only one tests see and nothing on the host is touched. Prints
# "ready RPCBIND_PID" once rpcbind answers, then waits until stdin closes (the test ends),
# and stops rpcbind.
set -euo pipefail
ip link set lo up
mount -t tmpfs tmpfs /run
rpcbind -f &
rpcbind_pid=$!
trap 'kill -KILL "$rpcbind_pid" 2>/dev/null; wait "$rpcbind_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    [[ -S /run/rpcbind.sock ]] && rpcinfo -T local "" 100000 4 >/dev/null 2>&1 && break
    sleep 0.05
done
rpcinfo -T local "" 100000 4 >/dev/null 2>&1 || { echo "rpcbind did not start" >&2; exit 1; }
echo "ready $rpcbind_pid"
# Block until the test closes our stdin.
cat >/dev/null || true
