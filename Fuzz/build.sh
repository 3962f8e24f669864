#!/usr/bin/env bash
# The libFuzzer build of every family (docs/FUZZING.md), in Fuzz/.build-fuzz, at nice 19.
# `--sanitize fuzzer` alone would instrument only the executables' own modules; the
# -sanitize-coverage flags give every Swift module edge counters, value profiles for
# comparisons (trace-cmp) and a PC table. -DFUZZING drops the replay `main`.
set -euo pipefail
cd "$(dirname "$0")"
export SWIFT_BACKTRACE=enable=no
nice -n 19 swift build --sanitize fuzzer --sanitize address --scratch-path .build-fuzz \
    -Xswiftc -DFUZZING -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp "$@"
