#!/usr/bin/env bash
# Fuzzes one decoder family for a budget of CPU time (not wall time: the machine is shared
# and the fuzzer runs at nice 19), then merges what it found into Tests/Fuzz/corpus/<family>
# (Fuzz/merge.sh). Logs and any crasher go to $FUZZ_WORK/<family>.
#
#   Fuzz/build.sh                       # once: the libFuzzer build in Fuzz/.build-fuzz
#   Fuzz/fuzz.sh gss 3600               # one CPU-hour; extra arguments go to libFuzzer
#   kill -TERM <pid of fuzz.sh>         # ends a run early, and still merges (a script started
#                                       # in the background ignores SIGINT)
#
# Families: oncrpc, authdh, gss, keyserver (Fuzz/Package.swift).
set -euo pipefail
family=$1
budget=$2
shift 2
fuzz="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$fuzz")"
corpus="$root/Tests/Fuzz/corpus/$family"
work="${FUZZ_WORK:-/tmp/fuzz-work}/$family"
mkdir -p "$work/grown" "$work/artifacts"
# A copy, so that a rebuild does not replace the executable under a running fuzzer
# (FUZZ_BINARY names another build of the same family).
binary="$work/fuzz-$family"
cp "${FUZZ_BINARY:-$fuzz/.build-fuzz/debug/fuzz-$family}" "$binary"
export SWIFT_BACKTRACE=enable=no

# The corpus folder is read, never written, while fuzzing: new inputs go to $work/grown.
# libFuzzer times inputs by the wall clock; at nice 19 on a busy machine a first input
# (which builds the bodies' keys and tables) took 13 s, so only a 5-minute input counts as hung.
# The keyserver body runs SRPC_KEYX's async handlers in tasks, whose allocations outlive an
# input; libFuzzer then runs LeakSanitizer after nearly every input, which stopped the run
# for minutes at a time (and never reported a leak), so that family fuzzes without it.
leaks=()
[ "$family" = keyserver ] && leaks=(-detect_leaks=0)
nice -n 19 "$binary" -max_len=4096 -timeout=300 -print_final_stats=1 "${leaks[@]}" -artifact_prefix="$work/artifacts/" "$@" \
    "$work/grown" "$corpus" >>"$work/fuzz.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true' INT TERM
ticks=$(getconf CLK_TCK)
used=0
while kill -0 "$pid" 2>/dev/null; do
    # utime + stime of every thread, fields 14 and 15 of /proc/PID/stat.
    now=$(awk -v t="$ticks" '{ print int(($14 + $15) / t) }' "/proc/$pid/stat" 2>/dev/null || true)
    [ -n "$now" ] && used=$now && echo "$used" >"$work/cpu-seconds"
    if [ "$used" -ge "$budget" ]; then
        kill -INT "$pid"
        break
    fi
    sleep 5
done
status=0
wait "$pid" || status=$?
echo "fuzz-$family: exit $status after $used CPU seconds (log: $work/fuzz.log)"

"$fuzz/merge.sh" "$family" "$binary" "$work/grown"
exit "$status"
