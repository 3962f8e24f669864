#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, only when something is
# missing (CI machines start fresh; developer machines usually have them already).
set -euo pipefail

packages=(
    libgmp-dev        # Diffie-Hellman arithmetic (CGMP)
    libsqlite3-dev    # the key directory
    sqlite3           # the shell, as another program opening and closing keys.db in tests
    libssl-dev        # single DES for the legacy AUTH_DES rules (libcrypto)
    rpcbind           # real rpcbind for registration tests
    libtirpc-dev      # C peers built against the system's ONC RPC library
    rpcsvc-proto      # rpcgen and the classic .x files
    iproute2          # `ip` inside private network namespaces
    util-linux        # unshare, setpriv, taskset
    tcpdump           # loopback captures in tests
    tshark            # an independent RPCSEC_GSS dissector for those captures
    systemd           # systemd-analyze: the exposure of the units in deploy/
    man-db            # man, to check the generated man pages render (deploy/install.sh --check)
    libpam0g-dev      # PAM headers for pam/pam_securerpc.so
    pamtester         # drives the PAM module in PAMModuleTests
    gcc
    postgresql        # a real server for the PostgreSQL key directory tests (initdb, pg_ctl, psql)
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
