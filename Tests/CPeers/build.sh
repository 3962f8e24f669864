#!/usr/bin/env bash
# Builds the C peers (echo_server, echo_client from echo.x; keyclient on libtirpc key_*) with the system
# libtirpc into OUTDIR, and libmalloc_count.so (the LD_PRELOAD counter for `rpcbench allocs`).
# Generated sources stay in OUTDIR, never in the tree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
for tool in rpcgen cc; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool not found (install rpcsvc-proto and gcc)" >&2; exit 1; }
done
[[ -f /usr/include/tirpc/rpc/rpc.h ]] || { echo "build.sh: libtirpc headers not found (install libtirpc-dev)" >&2; exit 1; }

cd "$out"
cp "$here/echo.x" .
rm -f echo.h echo_xdr.c echo_clnt.c echo_svc.c
rpcgen -h -o echo.h echo.x
rpcgen -c -o echo_xdr.c echo.x
rpcgen -l -o echo_clnt.c echo.x
rpcgen -m -o echo_svc.c echo.x
cflags=(-O2 -Wall -Wno-unused-variable -Wno-unused-function -I"$out" -I/usr/include/tirpc)
cc "${cflags[@]}" -o echo_server "$here/echo_server.c" echo_svc.c echo_xdr.c -ltirpc
cc "${cflags[@]}" -o echo_client "$here/echo_client.c" echo_clnt.c echo_xdr.c -ltirpc
cc "${cflags[@]}" -o keyclient "$here/keyclient.c" -ltirpc
cc -O2 -Wall -shared -fPIC -o libmalloc_count.so "$here/malloc_count.c" -ldl
