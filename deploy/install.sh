#!/usr/bin/env bash
# Installs Secure RPC on this host: the executables, their man pages (generated from their
# ArgumentParser definitions by swift-argument-parser's generate-manual plugin), the
# documentation, the PAM module pam_securerpc.so (pam/), and with --units the systemd units
# of deploy/. Run it as root for /usr/local;
# --destdir stages everything under another root instead (packaging, tests).
#
#   bash deploy/install.sh                         # release build, /usr/local
#   bash deploy/install.sh --destdir /tmp/stage --units
#   bash deploy/install.sh --configuration debug --no-build --destdir /tmp/stage --check
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
destdir=""
configuration=release
build=1
units=0
check=0
# Where libpam looks for modules (Debian's multiarch directory, where pam_unix.so lives).
pamdir=$(dirname "$(find /lib /usr/lib -name pam_unix.so -path '*security*' 2>/dev/null | head -1)" 2>/dev/null || true)
[[ -n $pamdir && $pamdir != . ]] || pamdir=/lib/security
usage() {
    cat <<EOF
usage: deploy/install.sh [--prefix DIR] [--destdir DIR] [--configuration release|debug] [--no-build] [--units] [--check]
  --prefix DIR          where programs, man pages and docs go (default /usr/local)
  --destdir DIR         stage under DIR instead of / (nothing outside DIR is touched)
  --configuration C     the build to install (default release)
  --no-build            install what is already built
  --units               also install the systemd units (into DESTDIR/etc/systemd/system)
  --pam-dir DIR         where the PAM module goes (default: beside pam_unix.so, here $pamdir)
  --check               afterwards, check that every program has its man page and it renders
EOF
}
while (($#)); do
    case $1 in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
        --configuration) configuration=${2:?--configuration needs release or debug}; shift 2 ;;
        --no-build) build=0; shift ;;
        --units) units=1; shift ;;
        --check) check=1; shift ;;
        --pam-dir) pamdir=${2:?--pam-dir needs a directory}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
case $configuration in release|debug) ;; *) echo "install.sh: --configuration is release or debug, not $configuration" >&2; exit 2 ;; esac
if [[ -z $destdir && $(id -u) -ne 0 && $prefix == /usr/local ]]; then
    echo "install.sh: installing into /usr/local needs root (or give --destdir or --prefix)" >&2
    exit 1
fi

daemons=(keyserverd keydird filesvc-server)
tools=(keyadmin keylogin keylogout keylist chkey filesvc xdrgen rpcbench keybench)

if ((build)); then
    swift build -c "$configuration"
fi
bin=$(swift build -c "$configuration" --show-bin-path)
for program in "${daemons[@]}" "${tools[@]}"; do
    [[ -x $bin/$program ]] || { echo "install.sh: $bin/$program is not built (drop --no-build, or build -c $configuration)" >&2; exit 1; }
done

# The plugin builds its generator and asks each program for its help as data; the pages land
# in .build/plugins/GenerateManual/outputs/<program>/<program>.1.
swift package generate-manual --configuration "$configuration" >/dev/null
manuals=.build/plugins/GenerateManual/outputs

root=$destdir$prefix
install -d "$root/sbin" "$root/bin" "$root/share/man/man1" "$root/share/doc/securerpc/keyserver"
for program in "${daemons[@]}"; do install -m 755 "$bin/$program" "$root/sbin/$program"; done
for program in "${tools[@]}"; do install -m 755 "$bin/$program" "$root/bin/$program"; done
for program in "${daemons[@]}" "${tools[@]}"; do
    page=$manuals/$program/$program.1
    [[ -f $page ]] || { echo "install.sh: no man page was generated for $program" >&2; exit 1; }
    install -m 644 "$page" "$root/share/man/man1/$program.1"
done
install -m 644 README.md docs/*.md "$root/share/doc/securerpc/"
install -m 644 keyserver/README.md "$root/share/doc/securerpc/keyserver/README.md"
pambuild=$(mktemp -d)
bash pam/build.sh "$pambuild" >/dev/null
install -d "$destdir$pamdir"
install -m 644 "$pambuild/pam_securerpc.so" "$destdir$pamdir/pam_securerpc.so"
rm -rf "$pambuild"
if ((units)); then
    install -d "$destdir/etc/systemd/system"
    for unit in deploy/*.service; do
        # The units name /usr/local/sbin; another prefix is written into them.
        sed "s#/usr/local/sbin/#$prefix/sbin/#g; s#/usr/local/share/#$prefix/share/#g" "$unit" >"$destdir/etc/systemd/system/$(basename "$unit")"
        chmod 644 "$destdir/etc/systemd/system/$(basename "$unit")"
    done
fi
echo "installed ${#daemons[@]} daemons and ${#tools[@]} tools with their man pages under $root, pam_securerpc.so in $destdir$pamdir"

if ((check)); then
    failed=0
    for program in "${daemons[@]}" "${tools[@]}"; do
        page=$root/share/man/man1/$program.1
        # A page that renders and names its program in NAME and SYNOPSIS.
        if ! rendered=$(MANWIDTH=80 man -l "$page" 2>/dev/null) || ! grep -q "^NAME" <<<"$rendered" || ! grep -q "$program" <<<"$rendered"; then
            echo "install.sh: the man page of $program does not render" >&2
            failed=1
        fi
        "$root/$( [[ " ${daemons[*]} " == *" $program "* ]] && echo sbin || echo bin )/$program" --version >/dev/null \
            || { echo "install.sh: the installed $program does not run" >&2; failed=1; }
    done
    # The module exports what libpam calls.
    for symbol in pam_sm_authenticate pam_sm_setcred pam_sm_open_session pam_sm_close_session; do
        nm -D --defined-only "$destdir$pamdir/pam_securerpc.so" | grep -qw "$symbol" \
            || { echo "install.sh: pam_securerpc.so does not export $symbol" >&2; failed=1; }
    done
    ((failed == 0)) || exit 1
    echo "checked: every installed program runs and has a man page that renders"
fi
