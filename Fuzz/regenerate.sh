#!/usr/bin/env bash
# Refreshes the generated Swift that the fuzz package compiles instead of running
# XDRGenPlugin: for every module under Fuzz/Modules that mirrors a plugin-built target
# (a folder with a `src` link to Sources/<Target>), each `.x` file there becomes
# Fuzz/Modules/<Target>/<stem>.xdrgen.swift, made by the main package's own xdrgen with
# the plugin's arguments. Run it after editing a `.x` file; the main suite's
# XDRGenTests.FuzzPackageSourcesTests fails while the checked-in copies are stale.
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$fuzz")"
swift build --package-path "$root" --product xdrgen 2>&1 | tail -1
bin="$(swift build --package-path "$root" --show-bin-path)"
for module in "$fuzz"/Modules/*/; do
    module="${module%/}"
    [ -L "$module/src" ] || continue
    rm -f "$module"/*.xdrgen.swift
    while IFS= read -r -d '' x; do
        out="$module/$(basename "${x%.x}").xdrgen.swift"
        "$bin/xdrgen" "$x" -o "$out" -I "$(dirname "$x")"
        echo "${out#"$root"/}"
    done < <(find -L "$module/src" -name '*.x' -print0 | sort -z)
done
