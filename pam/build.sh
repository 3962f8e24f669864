#!/usr/bin/env bash
# Builds pam_securerpc.so into OUTDIR (never in the tree), against Debian's libpam0g-dev.
# Install it with: install -m 644 OUTDIR/pam_securerpc.so /lib/x86_64-linux-gnu/security/
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
command -v cc >/dev/null || { echo "build.sh: cc not found (install gcc)" >&2; exit 1; }
[[ -f /usr/include/security/pam_modules.h ]] || { echo "build.sh: PAM headers not found (install libpam0g-dev)" >&2; exit 1; }
cc -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=default \
    -o "$out/pam_securerpc.so" "$here/pam_securerpc.c" -lpam
