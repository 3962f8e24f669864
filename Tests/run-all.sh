#!/usr/bin/env bash
# The one command that runs every test on a fresh machine of this kind: installs what the
# tests need, builds, and runs the whole suite (unit, end-to-end, interop with rpcbind,
# rpcinfo and rpcgen/libtirpc C peers). Tests that need daemons start and stop them
# themselves on loopback or in private network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

bash Tests/install-deps.sh

export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=yes,interactive=no}
swift build --build-tests
swift test --skip-build
