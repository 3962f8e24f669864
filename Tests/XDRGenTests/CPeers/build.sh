#!/bin/sh
# Builds the C peers of the xdrgen interop test into OUTDIR: rpcgen turns typezoo.x into
# C (header, XDR routines, client stubs, server dispatcher without main), then cc links
# zoo_server and zoo_client against the system libtirpc. Idempotent; fails loudly.
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$out"
for tool in rpcgen cc; do
    command -v "$tool" >/dev/null 2>&1 || { echo "build.sh: '$tool' not found (apt-get install rpcsvc-proto gcc libtirpc-dev)" >&2; exit 1; }
done
[ -f /usr/include/tirpc/rpc/rpc.h ] || { echo "build.sh: libtirpc headers missing (apt-get install libtirpc-dev)" >&2; exit 1; }
cp "$here/../Fixtures/typezoo.x" "$out/typezoo.x"
cd "$out"
rm -f typezoo.h typezoo_xdr.c typezoo_clnt.c typezoo_svc.c
rpcgen -h typezoo.x -o typezoo.h
rpcgen -c typezoo.x -o typezoo_xdr.c
rpcgen -l typezoo.x -o typezoo_clnt.c
rpcgen -m typezoo.x -o typezoo_svc.c
cflags="-O1 -I. -I$here -I/usr/include/tirpc -Wno-unused-variable"
cc $cflags -o zoo_server "$here/zoo_server.c" "$here/zoo_common.c" typezoo_xdr.c typezoo_svc.c -ltirpc
cc $cflags -o zoo_client "$here/zoo_client.c" "$here/zoo_common.c" typezoo_xdr.c typezoo_clnt.c -ltirpc
echo "built $out/zoo_server $out/zoo_client"
