#!/usr/bin/env bash
# The site's directory benchmark on both backends in one run: a throwaway PostgreSQL (Debian's
# binaries, initdb in a temporary directory, a unix socket only, durability settings left at
# their defaults), then `keybench site` with PRINCIPALS principals (default 1,000,000) in
# SQLite and in PostgreSQL, every row measured on both. Release build; runs as root.
#
#   bash deploy/bench-site.sh                 # 1,000,000 principals
#   PRINCIPALS=100000 bash deploy/bench-site.sh
#   SCRATCH_PATH=.build-bench bash deploy/bench-site.sh   # reuse another release build folder
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "bench-site.sh: run as root (the keyserver acts for several uids; postgres runs as user postgres)" >&2; exit 1; }
bash Tests/install-deps.sh >/dev/null
scratch=${SCRATCH_PATH:-.build}
swift build -c release --scratch-path "$scratch" --product keybench >/dev/null
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

work=$(mktemp -d)
chmod 755 "$work"
chown postgres "$work"
port=$((20000 + RANDOM % 20000))
as_postgres() { runuser -u postgres -- "$@"; }
cleanup() {
    as_postgres "$pgbin/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
as_postgres "$pgbin/initdb" -D "$work/data" -U bench --auth=trust --no-locale -E UTF8 >/dev/null
as_postgres "$pgbin/pg_ctl" -D "$work/data" -l "$work/log" -w -o "-k $work -p $port -c listen_addresses=''" start >/dev/null
as_postgres "$pgbin/createdb" -h "$work" -p "$port" -U bench keys
echo "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on a unix socket (fsync on, synchronous_commit on)"
"$scratch/release/keybench" site --principals "${PRINCIPALS:-1000000}" --postgres "postgres://bench@/keys?host=$work&port=$port" "$@"
