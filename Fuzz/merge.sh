#!/usr/bin/env bash
# Merges grown inputs into a family's kept corpus, Tests/Fuzz/corpus/<family>, minimised with
# libFuzzer's -merge=1: the named inputs there (seeds, crash-*) always stay; the hash-named
# rest is replaced by the smallest set that keeps the coverage of the old corpus and the
# grown inputs together. Fuzz/fuzz.sh calls it at the end of every run.
#
#   Fuzz/merge.sh FAMILY EXECUTABLE GROWN_DIR...
set -euo pipefail
family=$1
binary=$2
shift 2
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$root/Tests/Fuzz/corpus/$family"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/merged" "$work/old"
for file in "$corpus"/*; do
    name=$(basename "$file")
    if [[ "$name" =~ ^[0-9a-f]{40}$ ]]; then cp "$file" "$work/old/"; else cp "$file" "$work/merged/"; fi
done
export SWIFT_BACKTRACE=enable=no
nice -n 19 "$binary" -merge=1 -max_len=4096 -detect_leaks=0 "$work/merged" "$work/old" "$@" >"$work/merge.log" 2>&1 \
    || { cat "$work/merge.log" >&2; exit 1; }
grep -E "^MERGE-OUTER: [0-9]+ new files" "$work/merge.log" || true
find "$corpus" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
cp "$work/merged"/* "$corpus/"
echo "fuzz-$family: corpus now $(ls "$corpus" | wc -l) inputs, $(cat "$corpus"/* | wc -c) bytes"
