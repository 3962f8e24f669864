#!/usr/bin/env bash
# The one command that runs every test on a fresh machine of this kind: installs what the
# tests need, builds, and runs the whole suite (unit, end-to-end, interop with rpcbind,
# rpcinfo, libtirpc's key_* functions and rpcgen C peers). Tests that need daemons start
# and stop them themselves on loopback, unix sockets in temporary directories, or private
# network namespaces; the key directory tests start a throwaway PostgreSQL (installed by
# install-deps.sh) on a unix socket. Ends with one summary line: "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."

bash Tests/install-deps.sh

export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=yes,interactive=no}
swift build --build-tests

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# All tests are XCTest; Swift Testing would only add a "0 tests" run.
set +e
swift test --skip-build --disable-swift-testing 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

summary=$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -1 || true)
total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*with ([0-9]+) failures?.*/\1/' <<<"$summary")
if [[ -z "$summary" || -z "$total" ]]; then
    echo "0 passed, 1 failed"
    echo "run-all: the test run printed no summary" >&2
    exit 1
fi
# Checks outside XCTest (they run SwiftPM command plugins, which cannot run inside
# `swift test`: it holds the build lock). Each counts as one test in the summary line.
check() {
    local name=$1
    shift
    local out
    out=$(mktemp)
    total=$((total + 1))
    if "$@" >"$out" 2>&1; then
        echo "$name: passed"
    else
        cat "$out"
        echo "$name: FAILED: $*" >&2
        failed=$((failed + 1))
        status=1
    fi
    rm -f "$out"
}
stage=$(mktemp -d)
# Every program installs, runs and has a man page that renders.
check "install check" bash deploy/install.sh --configuration debug --no-build --destdir "$stage/root" --units --check
rm -rf "$stage"
# The libraries' documentation catalogs build without a single warning.
docs() {
    local target
    for target in XDR ONCRPC KeyCrypto KeyDirectory KeyDirectoryPostgres KeyServer SecureRPC KeyDirectoryService; do
        swift package generate-documentation --target "$target" --warnings-as-errors || return 1
    done
}
check "documentation check" docs
# The examples build as a package of their own (depending on this one by path) and run
# against a keyserver, rpcbind and a libtirpc server of their own (Examples/run.sh).
check "examples check" bash Examples/run.sh
echo "$((total - failed)) passed, $failed failed"
exit "$status"
