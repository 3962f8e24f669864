#!/usr/bin/env bash
# A whole site on one machine, in network namespaces this script creates: two directory hosts
# (db1: PostgreSQL primary + keydird; db2: PostgreSQL hot standby + keydird --standby-of), a
# file server host (fs: filesvc-server as a service principal) and two client hosts (c1, c2),
# joined by a bridge in a sixth "switch" namespace on a private 10.x.y.0/24. Every host has
# its own keyserverd and securerpc.conf; only the directory hosts hold the database.
#
# It shows, each step a counted check: the directory in PostgreSQL and its standby streaming,
# host enrolment, keylogin through the directory, RPCSEC_GSS calls across hosts with the file
# service's ownership decisions, remote administration (keyadmin --server) from a client
# host, a revocation reaching the file server through the change feed, a write through the
# standby refused naming the primary, the primary's loss with keylogin and the file service's
# lookups going on through the standby, and promotion. It ends with `N passed, M failed` and
# exits 0 only when nothing failed. Everything it made — daemons, PostgreSQL, namespaces,
# bridge, veths, temporary files — is removed on exit, after a failure or Ctrl-C too.
#
# Run as root on a Debian machine: sudo bash deploy/site-demo.sh
# SITE_DEMO_SKIP_BUILD=1 skips the package install and the build and uses the binaries in
# $(swift build --show-bin-path). SITE_DEMO_LOGS=DIR keeps a copy of the daemons' logs and of
# every check's output there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "site-demo.sh must run as root: it creates network namespaces, runs PostgreSQL as the" >&2
    echo "postgres user and each site user under a uid of its own. Run: sudo bash deploy/site-demo.sh" >&2
    exit 1
fi

products=(keyadmin keydird keyserverd keylogin keylogout keylist filesvc-server filesvc)
if [[ "${SITE_DEMO_SKIP_BUILD:-}" != 1 ]]; then
    echo "== installing packages and building (${products[*]})"
    bash Tests/install-deps.sh
    # One product per invocation: `swift build --product A --product B` builds only B.
    for product in "${products[@]}"; do swift build --product "$product"; done
fi
bin=$(swift build --show-bin-path)
for product in "${products[@]}"; do
    [[ -x "$bin/$product" ]] || { echo "missing $bin/$product: build it (swift build --product $product)" >&2; exit 1; }
done
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -n "$pgbin" && -x "$pgbin/postgres" ]] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "no postgres user: apt-get install postgresql" >&2; exit 1; }
for tool in ip setpriv runuser; do
    command -v "$tool" >/dev/null || { echo "missing $tool (iproute2, util-linux)" >&2; exit 1; }
done
# The daemons would tell a service manager they are ready; here nobody asked.
unset NOTIFY_SOCKET SECURERPC_CONF SECURERPC_DB SECURERPC_DOMAIN

# ---------------------------------------------------------------------------------------------
# The site's shape.

domain=demo.example
tag=$(printf '%04x' $((RANDOM % 65536)))
hosts=(db1 db2 fs c1 c2)
# A /24 nobody on this machine routes; it only exists inside our namespaces anyway.
subnet=""
for second in 231 232 233 234 235 236; do
    if ! ip route | grep -q "^10\.$second\."; then subnet="10.$second.0"; break; fi
done
[[ -n "$subnet" ]] || { echo "no free 10.x.0.0/24 found" >&2; exit 1; }
declare -A addr=([db1]="$subnet.11" [db2]="$subnet.12" [fs]="$subnet.20" [c1]="$subnet.31" [c2]="$subnet.32")
dirport=20050 fsport=20049 pgport=5432
poll=2  # change-poll, seconds (default 10): how soon a server hears of a revocation
# uids of the people at this site
alice=4242 bob=4243 admin=4100 dave=4245 erin=4246 frank=4247 fsuid=4300
net() { echo "unix.$1@$domain"; }

ns() { echo "sdemo-$1-$tag"; }
work=$(mktemp -d /tmp/site-demo.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/logs"
for h in "${hosts[@]}"; do mkdir -p "$work/$h"; chmod 755 "$work/$h"; done
cd "$work"

# ---------------------------------------------------------------------------------------------
# Cleanup: runs on every exit, normal or not.

declare -A pid=()
created_ns=()
passed=0 failed=0 interrupted=0 finished=0

# A child that exited is a zombie until waited for: kill -0 would still find it.
alive() { [[ -e /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
stop_pid() {  # NAME [SIGNAL]: SIGNAL (TERM), then KILL after 5 s; reaped
    local p=${pid[$1]:-} signal=${2:-TERM}
    [[ -n "$p" ]] || return 0
    if alive "$p"; then
        kill "-$signal" "$p" 2>/dev/null || true
        for _ in $(seq 50); do alive "$p" || break; sleep 0.1; done
        alive "$p" && kill -KILL "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null || true
    unset "pid[$1]"
}

cleanup() {
    local rc=$1
    trap - EXIT INT TERM
    set +e
    # Ctrl-C may land inside a check, whose output goes to a file: back to the terminal.
    exec 1>&7 2>&8
    echo
    echo "== cleaning up"
    for name in "${!pid[@]}"; do stop_pid "$name"; done
    for h in db1 db2; do
        if [[ -f "$work/$h/pg/data/postmaster.pid" ]]; then
            runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/$h/pg/data" -m immediate -w -t 20 stop >/dev/null 2>&1
        fi
    done
    # Anything still inside our namespaces is ours: stop it by pid before the namespace goes.
    local n p
    for n in "${created_ns[@]}"; do
        for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    done
    for n in "${created_ns[@]}"; do
        for _ in $(seq 20); do [[ -z "$(ip netns pids "$n" 2>/dev/null)" ]] && break; sleep 0.1; done
        ip netns del "$n" 2>/dev/null
    done
    cd /
    if [[ -n "${SITE_DEMO_LOGS:-}" ]]; then
        mkdir -p "$SITE_DEMO_LOGS" && cp -r "$work/logs/." "$SITE_DEMO_LOGS/" && echo "   logs copied to $SITE_DEMO_LOGS"
    fi
    rm -rf "$work"
    local left
    left=$(ip netns list 2>/dev/null | grep -c -- "-$tag" || true)
    echo "   removed: daemons, PostgreSQL on db1 and db2, namespaces ($left left), bridge and veths, $work"
    if ((interrupted)); then
        echo "interrupted"; failed=$((failed + 1))
    elif ((!finished)); then
        echo "stopped early (exit status $rc)"; ((rc == 0)) || failed=$((failed + 1))
    fi
    echo
    echo "$passed passed, $failed failed"
    if ((failed == 0)); then exit 0; else exit 1; fi
}
exec 7>&1 8>&2
trap 'cleanup $?' EXIT
trap 'interrupted=1; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Helpers.

now_ms() { date +%s%3N; }
since() { local ms=$(($(now_ms) - $1)); printf '%d.%03d s' $((ms / 1000)) $((ms % 1000)); }
step() { echo; echo "== $*"; }
info() { echo "   info: $*"; }

# check NAME COMMAND...: runs COMMAND (a program or a function of this script), counts it,
# prints the result and, when it failed, the end of what it printed. It returns 0 either way
# (set -e); `ok` says how it went: `check ...; ok && info ...`.
last_ok=0
ok() { ((last_ok)); }
check() {
    local name=$1; shift
    local t0 rc=0; t0=$(now_ms)
    "$@" >"$work/check.out" 2>&1 || rc=$?
    ((rc != 130)) || { interrupted=1; exit 130; }  # the command died of Ctrl-C
    { echo "=== $(date +%T.%3N) $name: exit status $rc"; cat "$work/check.out"; } >>"$work/logs/checks.log"
    if ((rc == 0)); then
        passed=$((passed + 1)) last_ok=1; echo "   PASS  $name ($(since "$t0"))"
    else
        failed=$((failed + 1)) last_ok=0; echo "   FAIL  $name (exit status $rc, $(since "$t0"))"
        tail -n 25 "$work/check.out" | sed 's/^/         | /'
    fi
}
# require NAME COMMAND...: a check later steps cannot do without.
require() {
    check "$@"
    ok && return 0
    echo "   (later steps need this one: stopping)"
    exit 1
}
# expect_fail NAME REGEX COMMAND...: passes when COMMAND fails saying something matching REGEX.
expect_fail() {
    local name=$1 regex=$2; shift 2
    check "$name" refused "$regex" "$@"
}
refused() {
    local regex=$1; shift
    if "$@" >"$work/refused.out" 2>&1; then
        cat "$work/refused.out"; echo "(it succeeded; it should have been refused)"; return 1
    fi
    cat "$work/refused.out"
    grep -Eq -- "$regex" "$work/refused.out" || { echo "(refused, but not with /$regex/)"; return 1; }
}
# output_has REGEX COMMAND...: COMMAND succeeds and prints something matching REGEX.
output_has() {
    local regex=$1; shift
    "$@" >"$work/output.out" 2>&1 || { cat "$work/output.out"; return 1; }
    cat "$work/output.out"
    grep -Eq -- "$regex" "$work/output.out" || { echo "(no /$regex/ in the output)"; return 1; }
}
# eventually SECONDS COMMAND...: retries COMMAND every 0.2 s until it succeeds or time is up.
eventually() {
    local limit=$1; shift
    local t0; t0=$(now_ms)
    until "$@"; do
        (($(now_ms) - t0 < limit * 1000)) || { echo "(still failing after $limit s)"; return 1; }
        sleep 0.2
    done
}

# on HOST [as UID] COMMAND...: COMMAND on that host (in its namespace), as root or as UID.
on() {
    local host=$1; shift
    if [[ "${1:-}" == as ]]; then
        local uid=$2; shift 2
        ip netns exec "$(ns "$host")" setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"
    else
        ip netns exec "$(ns "$host")" "$@"
    fi
}
pg() { local host=$1; shift; (cd /tmp && on "$host" runuser -u postgres -- "$@" 7>&- 8>&-); }
psql_on() {  # HOST SQL: one value from the host's own PostgreSQL
    pg "$1" "$pgbin/psql" -X -A -t -q -h "${addr[$1]}" -p "$pgport" -U dirtest -d keys -c "$2"
}

# daemon NAME HOST UID|root MARKER COMMAND...: starts COMMAND on HOST in the background, its
# output in logs/NAME.log, and waits (30 s at most) until a line of the log matches the
# regular expression MARKER. pid[NAME] is the daemon's own pid (ip netns exec and setpriv exec).
daemon() {
    local name=$1 host=$2 uid=$3 marker=$4; shift 4
    local log="$work/logs/$name.log"
    # A session of its own: Ctrl-C reaches the script and its foreground command, and the
    # daemons are then stopped in order by the cleanup.
    local command=(setsid ip netns exec "$(ns "$host")")
    [[ $uid == root ]] || command+=(setpriv --reuid="$uid" --regid="$uid" --clear-groups)
    "${command[@]}" "$@" >"$log" 2>&1 </dev/null 7>&- 8>&- &
    pid[$name]=$!
    local t0; t0=$(now_ms)
    until grep -aEq -- "$marker" "$log"; do
        if ! alive "${pid[$name]}"; then
            echo "$name exited before it was ready:"; tail -n 20 "$log"; stop_pid "$name"; return 1
        fi
        if (($(now_ms) - t0 > 30000)); then echo "$name not ready after 30 s:"; tail -n 20 "$log"; return 1; fi
        sleep 0.1
    done
    alive "${pid[$name]}" || { echo "$name exited:"; tail -n 20 "$log"; stop_pid "$name"; return 1; }
    echo "$name ready (pid ${pid[$name]}) after $(since "$t0")"
}

keyadmin_on() { local host=$1; shift; on "$host" "$bin/keyadmin" "$@"; }
# keylogin through the directory: HOST UID [PASSWORD]
keylogin_on() {
    local host=$1 uid=$2 password=${3:-pw}
    printf '%s\n' "$password" | on "$host" as "$uid" "$bin/keylogin" --config "$work/$host/securerpc.conf" \
        --netname "$(net "$uid")" --socket "$work/$host/keyservsock" --password-stdin
}
# filesvc HOST UID SUBCOMMAND ARGS...: the file service on fs, called from HOST as UID.
filesvc_on() {
    local host=$1 uid=$2; shift 2
    on "$host" as "$uid" "$bin/filesvc" "$@" --host "${addr[fs]}" --port "$fsport" --transport tcp \
        --server "$(net filesvc/fs)" --config "$work/$host/securerpc.conf" --keyserver-socket "$work/$host/keyservsock"
}
# remote administration: HOST UID DIRECTORY-HOST keyadmin-arguments...
admin_on() {
    local host=$1 uid=$2 dir=$3; shift 3
    on "$host" as "$uid" "$bin/keyadmin" "$@" --server "${addr[$dir]}:$dirport" --config "$work/$host/securerpc.conf" \
        --keyserver-socket "$work/$host/keyservsock"
}
newkey_args() { echo "--domain $domain --mechanism ffdhe3072 --password-file $work/pw"; }

echo "site-demo: hosts ${hosts[*]} in namespaces sdemo-*-$tag on $subnet.0/24; work directory $work"
echo "binaries: $bin; PostgreSQL: $pgbin"
printf 'pw\n' >"$work/pw"; chmod 644 "$work/pw"
: >"$work/none.conf"; chmod 644 "$work/none.conf"

# ---------------------------------------------------------------------------------------------
step "the network: a bridge in namespace $(ns sw), one namespace per host"
make_network() {
    local sw; sw=$(ns sw)
    ip netns add "$sw" && created_ns+=("$sw") || return 1
    ip -n "$sw" link set lo up && ip -n "$sw" link add br0 type bridge && ip -n "$sw" link set br0 up || return 1
    local i=0 h n
    for h in "${hosts[@]}"; do
        i=$((i + 1)); n=$(ns "$h")
        ip netns add "$n" && created_ns+=("$n") || return 1
        ip -n "$n" link set lo up || return 1
        ip link add "sd${tag}${i}h" netns "$n" type veth peer name "sd${tag}${i}s" netns "$sw" || return 1
        ip -n "$n" addr add "${addr[$h]}/24" dev "sd${tag}${i}h" && ip -n "$n" link set "sd${tag}${i}h" up || return 1
        ip -n "$sw" link set "sd${tag}${i}s" master br0 && ip -n "$sw" link set "sd${tag}${i}s" up || return 1
        echo "$h: ${addr[$h]} in $n"
    done
}
require "5 hosts on one bridge: db1 ${addr[db1]}, db2 ${addr[db2]}, fs ${addr[fs]}, c1 ${addr[c1]}, c2 ${addr[c2]}" make_network

# ---------------------------------------------------------------------------------------------
step "db1: PostgreSQL primary on ${addr[db1]}:$pgport, the directory in it"
pg_start() {  # HOST: PostgreSQL on the host's address (fsync off: a throwaway demo cluster)
    local host=$1
    pg "$host" "$pgbin/pg_ctl" -D "$work/$host/pg/data" -l "$work/$host/pg/log" -w -t 60 \
        -o "-k $work/$host/pg -p $pgport -c listen_addresses=${addr[$host]} -c fsync=off -c full_page_writes=off" start
}
make_primary() {
    mkdir -p "$work/db1/pg" && chown postgres: "$work/db1/pg" && chmod 700 "$work/db1/pg" || return 1
    pg db1 "$pgbin/initdb" -D "$work/db1/pg/data" -U dirtest --auth=trust --no-sync --no-locale -E UTF8 >/dev/null || return 1
    # The site's hosts reach it over TCP: the standby for replication, keydird and keyadmin.
    printf 'host all all %s.0/24 trust\nhost replication all %s.0/24 trust\n' "$subnet" "$subnet" \
        >>"$work/db1/pg/data/pg_hba.conf" || return 1
    pg_start db1 || return 1
    pg db1 "$pgbin/createdb" -h "${addr[db1]}" -p "$pgport" -U dirtest keys
}
require "PostgreSQL primary started on db1" make_primary
url1="postgres://dirtest@${addr[db1]}:$pgport/keys"
url2="postgres://dirtest@${addr[db2]}:$pgport/keys"
require "keyadmin init --db $url1" keyadmin_on db1 init --db "$url1"

make_principals() {
    # The directory principal: both keydirds are unix.dir; its key file is their keyserver's root key.
    keyadmin_on db1 enroll-host dir --db "$url1" --domain "$domain" --key-file "$work/db1/rootkey" --config "$work/none.conf" || return 1
    cp -p "$work/db1/rootkey" "$work/db2/rootkey" || return 1
    local uid
    for uid in "$admin" "$alice" "$bob"; do
        # shellcheck disable=SC2046
        keyadmin_on db1 newkey --db "$url1" --user "$uid" $(newkey_args) || return 1
    done
    keyadmin_on db1 grant admin "$(net "$admin")" --db "$url1"
}
require "principals: unix.dir (the directory), admin $admin, alice $alice, bob $bob" make_principals
check "the directory lists them (keyadmin list on db1)" output_has "$(net "$bob")" keyadmin_on db1 list --db "$url1"

# ---------------------------------------------------------------------------------------------
step "db2: a hot standby of db1 (pg_basebackup -R, streaming)"
make_standby() {
    mkdir -p "$work/db2/pg" && chown postgres: "$work/db2/pg" && chmod 700 "$work/db2/pg" || return 1
    pg db2 "$pgbin/pg_basebackup" -D "$work/db2/pg/data" -R -X stream --checkpoint=fast \
        -h "${addr[db1]}" -p "$pgport" -U dirtest || return 1
    pg_start db2
}
require "standby copied from db1 over the network and started" make_standby
streaming() {
    [[ $(psql_on db1 "select state from pg_stat_replication where client_addr = '${addr[db2]}'") == streaming ]] &&
        [[ $(psql_on db2 "select pg_is_in_recovery()") == t ]]
}
require "db1 streams to db2 (pg_stat_replication), db2 in recovery" eventually 30 streaming
check "the standby answers reads (keyadmin list on db2)" output_has "$(net "$bob")" keyadmin_on db2 list --db "$url2"

# ---------------------------------------------------------------------------------------------
step "keydird on both directory hosts (db2's with --standby-of db1)"
start_directory_keyserver() {
    daemon "keyserverd-$1" "$1" root "^ready " "$bin/keyserverd" --socket "$work/$1/keyservsock" --root-key "$work/$1/rootkey" \
        --no-rpcbind --config "$work/none.conf" --netname "$(net dir)"
}
start_keydird() {  # HOST URL [PRIMARY-HOST]
    local host=$1 url=$2 primary=${3:-}
    daemon "keydird-$host" "$host" root "^ready " "$bin/keydird" --db "$url" --netname "$(net dir)" --domain "$domain" \
        --host "${addr[$host]}" --port "$dirport" --keyserver-socket "$work/$host/keyservsock" --config "$work/none.conf" \
        ${primary:+--standby-of "${addr[$primary]}:$dirport"}
}
require "keyserverd on db1 holding unix.dir's key" start_directory_keyserver db1
require "keyserverd on db2 holding unix.dir's key" start_directory_keyserver db2
require "keydird on db1 (primary, PostgreSQL on db1)" start_keydird db1 "$url1"
require "keydird on db2 (standby of db1, PostgreSQL on db2)" start_keydird db2 "$url2" db1
check "db2's keydird says mode=standby of db1" grep -F "mode=standby of ${addr[db1]}:$dirport" "$work/logs/keydird-db2.log"
fingerprint=$(grep -o 'fingerprint=sha256:[0-9a-f]\{64\}' "$work/logs/keydird-db1.log" | head -1 | cut -d= -f2 || true)
require "keydird printed its directory key's fingerprint" test -n "$fingerprint"
info "keydird's directory key: $(net dir) $fingerprint"
check "keyadmin fingerprint prints the same pin" output_has "$fingerprint" keyadmin_on db1 fingerprint "$(net dir)" --db "$url1"
cat >"$work/site.conf" <<EOF
domain $domain
directory ${addr[db1]}:$dirport $(net dir) $fingerprint
directory ${addr[db2]}:$dirport $(net dir) $fingerprint
EOF
chmod 644 "$work/site.conf"

# ---------------------------------------------------------------------------------------------
step "enrolling the file server host and the client hosts (keyadmin enroll-host on db1)"
enroll() {  # HOST: key file and securerpc.conf made on db1, "carried" to the host's directory
    local host=$1
    keyadmin_on db1 enroll-host "$host" --db "$url1" --domain "$domain" --key-file "$work/$host/rootkey" \
        --conf-file "$work/$host/securerpc.conf" --config "$work/site.conf" || return 1
    # Site tuning the operator adds: a revocation reaches servers within change-poll.
    echo "change-poll $poll" >>"$work/$host/securerpc.conf" && chmod 644 "$work/$host/securerpc.conf" || return 1
    grep -c "^directory " "$work/$host/securerpc.conf" | grep -qx 2 || { echo "expected two directory lines:"; cat "$work/$host/securerpc.conf"; return 1; }
}
for h in fs c1 c2; do require "enroll-host $h: key file and securerpc.conf with both directory lines" enroll "$h"; done
enroll_service() {
    keyadmin_on db1 enroll-service filesvc --host fs --db "$url1" --domain "$domain" --key-file "$work/fs/filesvc.key" || return 1
    chown "$fsuid:$fsuid" "$work/fs/filesvc.key"
}
require "enroll-service filesvc on fs (unix.filesvc/fs, key file for uid $fsuid)" enroll_service
start_host_keyserver() {
    local host=$1; shift
    daemon "keyserverd-$host" "$host" root "^ready " "$bin/keyserverd" --socket "$work/$host/keyservsock" \
        --root-key "$work/$host/rootkey" --no-rpcbind --config "$work/$host/securerpc.conf" --netname "$(net "$host")" "$@"
}
require "keyserverd on fs (host key file, the service's key for uid $fsuid)" start_host_keyserver fs --service-key "$fsuid:$work/fs/filesvc.key"
require "keyserverd on c1 (host key file)" start_host_keyserver c1
require "keyserverd on c2 (host key file)" start_host_keyserver c2
for h in fs c1 c2; do
    check "$h's keyserver holds the host key from its key file (keylist as root)" \
        output_has "rootkey \(root key file\): present; the keyserver holds ffdhe3072" \
        on "$h" "$bin/keylist" --socket "$work/$h/keyservsock" --config "$work/$h/securerpc.conf"
done

step "fs: the file service as uid $fsuid, $(net filesvc/fs), keys looked up through the directory"
mkdir -p "$work/fs/files"; chown "$fsuid:$fsuid" "$work/fs/files"
require "filesvc-server on ${addr[fs]}:$fsport serving" daemon filesvc-server fs "$fsuid" "serving $work/fs/files" "$bin/filesvc-server" \
    --root "$work/fs/files" --host "${addr[fs]}" --port "$fsport" --transport tcp --netname "$(net filesvc/fs)" \
    --config "$work/fs/securerpc.conf" --keyserver-socket "$work/fs/keyservsock"
check "filesvc-server finds keys through the directory servers" grep -F "keys=the directory servers" "$work/logs/filesvc-server.log"

# ---------------------------------------------------------------------------------------------
step "alice ($alice) on c1: keylogin through the directory, then calls to fs"
require "alice keylogin on c1 (sealed keys fetched by c1's keyserver from keydird)" \
    output_has "logged in to the keyserver" keylogin_on c1 "$alice"
expect_fail "a wrong password is refused" "keylogin: wrong password" keylogin_on c1 "$alice" nope
echo "written by alice on c1" >"$work/note.txt"; chmod 644 "$work/note.txt"
require "alice puts /note.txt on fs from c1 (RPCSEC_GSS privacy)" filesvc_on c1 "$alice" put "$work/note.txt" /note.txt
check "alice reads it back" output_has "^written by alice on c1$" filesvc_on c1 "$alice" cat /note.txt
check "fs logged alice's proven netname and privacy" \
    grep -E "caller=$(net "$alice").*ffdhe3072/privacy|ffdhe3072/privacy.*caller=$(net "$alice")" "$work/logs/filesvc-server.log"

step "bob ($bob) on c2: another host, another user"
check "bob keylogin on c2" output_has "logged in to the keyserver" keylogin_on c2 "$bob"
check "bob lists / on fs (listing is open)" output_has "note.txt" filesvc_on c2 "$bob" ls /
expect_fail "bob may not read alice's file (the service decides by owner)" "permission denied" filesvc_on c2 "$bob" cat /note.txt
check "fs logged the refusal" grep -F "refused: not the owner" "$work/logs/filesvc-server.log"

# ---------------------------------------------------------------------------------------------
step "remote administration: the admin ($admin) on c2, keyadmin --server db1"
check "admin keylogin on c2" output_has "logged in to the keyserver" keylogin_on c2 "$admin"
check "admin lists the directory remotely" output_has "$(net "$alice")" admin_on c2 "$admin" db1 list
# shellcheck disable=SC2046
check "admin adds dave ($dave) remotely" admin_on c2 "$admin" db1 newkey --user "$dave" $(newkey_args)
# shellcheck disable=SC2046
check "admin adds erin ($erin) remotely (she first logs in after the primary is lost)" admin_on c2 "$admin" db1 newkey --user "$erin" $(newkey_args)
# shellcheck disable=SC2046
expect_fail "bob (no admin role) is refused administration" "admin" admin_on c2 "$bob" db1 newkey --user 4299 $(newkey_args)
check "dave keylogin on c1, nothing restarted" output_has "logged in to the keyserver" keylogin_on c1 "$dave"
check "dave writes on fs from c1" filesvc_on c1 "$dave" put "$work/note.txt" /dave.txt
check "the audit names the admin and c2's address" output_has "$(net "$admin") from ${addr[c2]}" keyadmin_on db1 audit --db "$url1"

# ---------------------------------------------------------------------------------------------
step "a revocation: the admin revokes bob; the standby and the file server hear of it"
check "bob is served before the revocation" filesvc_on c2 "$bob" ls /
check "db2's database shows bob's key active" output_has "ffdhe3072 \(active\)" keyadmin_on db2 show "$(net "$bob")" --db "$url2"
require "admin revokes bob through db1" admin_on c2 "$admin" db1 revoke "$(net "$bob")"
revoked_at=$(now_ms)
shown_revoked() { keyadmin_on db2 show "$(net "$bob")" --db "$url2" >"$work/show.out" 2>&1 && grep -qF "ffdhe3072 (revoked)" "$work/show.out"; }
check "the revocation is replicated to db2's database" eventually 20 shown_revoked
ok && info "replication: bob read as revoked on db2 $(since "$revoked_at") after keyadmin revoke returned (each check is a keyadmin process)"
bob_refused() { ! filesvc_on c2 "$bob" ls / >"$work/bob.out" 2>&1; }
check "fs refuses bob's new calls (change feed, change-poll $poll s; 30 s deadline)" eventually 30 bob_refused
ok && info "revocation: fs refused bob $(since "$revoked_at") after keyadmin revoke returned"
ok && check "the refusal says why" grep -F "has no key of this group for the client" "$work/bob.out"
check "alice is still served" filesvc_on c1 "$alice" ls /

# ---------------------------------------------------------------------------------------------
step "the standby refuses writes, naming the primary"
check "admin reads through db2" output_has "$(net "$dave")" admin_on c2 "$admin" db2 list
# shellcheck disable=SC2046
expect_fail "a write through db2 is refused: read-only standby, primary ${addr[db1]}:$dirport" \
    "read-only standby.*${addr[db1]}:$dirport|${addr[db1]}:$dirport.*read-only standby" \
    admin_on c2 "$admin" db2 newkey --user 4299 $(newkey_args)

# ---------------------------------------------------------------------------------------------
step "db1 is lost: keydird killed, PostgreSQL stopped as in a crash (immediate)"
lose_primary() {
    stop_pid keydird-db1 KILL
    pg db1 "$pgbin/pg_ctl" -D "$work/db1/pg/data" -m immediate -w stop
}
check "db1's keydird and PostgreSQL are down" lose_primary
lost_at=$(now_ms)
check "erin keylogin on c2: the sealed keys come from db2" output_has "logged in to the keyserver" keylogin_on c2 "$erin"
ok && info "failover: erin's keylogin (sealed keys through db2, then the password check here) returned $(since "$lost_at") after the primary's loss"
check "erin writes on fs (fs looks her up through db2)" filesvc_on c2 "$erin" put "$work/note.txt" /erin.txt
check "fs's log shows db1 refused and the lookup tried again" grep -F "directory server failed, trying again" "$work/logs/filesvc-server.log"
check "erin reads it back" output_has "^written by alice on c1$" filesvc_on c2 "$erin" cat /erin.txt
check "alice logs in again on c1 and reads her file" eval 'keylogin_on c1 "$alice" && filesvc_on c1 "$alice" cat /note.txt'
check "reads through db2 go on (admin list)" output_has "$(net "$erin")" admin_on c2 "$admin" db2 list
expect_fail "writes are still refused: db2 is not promoted" "read-only standby" admin_on c2 "$admin" db2 enable "$(net "$bob")"
expect_fail "bob is still refused (revoked on the standby too)" "has no key of this group for the client" filesvc_on c2 "$bob" ls /

# ---------------------------------------------------------------------------------------------
step "promotion: PostgreSQL on db2 promoted, keydird restarted without --standby-of"
promote() {
    local t0; t0=$(now_ms)
    pg db2 "$pgbin/pg_ctl" -D "$work/db2/pg/data" -w -t 60 promote || return 1
    [[ $(psql_on db2 "select pg_is_in_recovery()") == f ]] || return 1
    stop_pid keydird-db2
    start_keydird db2 "$url2" || return 1
    echo "promoted and restarted in $(since "$t0")"
}
promoted_at=$(now_ms)
require "db2 promoted, keydird restarted" promote
info "promotion: PostgreSQL promoted and keydird restarted as primary in $(since "$promoted_at")"
check "db2's keydird says mode=primary" grep -F "mode=primary" "$work/logs/keydird-db2.log"
# shellcheck disable=SC2046
check "admin adds frank ($frank) through db2" admin_on c2 "$admin" db2 newkey --user "$frank" $(newkey_args)
check "frank keylogin on c1 (db1 still dead: first line refused, db2 answers)" output_has "logged in to the keyserver" keylogin_on c1 "$frank"
check "frank writes and reads on fs" eval 'filesvc_on c1 "$frank" put "$work/note.txt" /frank.txt && filesvc_on c1 "$frank" cat /frank.txt'
check "admin enables bob again through db2" admin_on c2 "$admin" db2 enable "$(net "$bob")"
enabled_at=$(now_ms)
check "fs serves bob again (change feed from the new primary; 30 s deadline)" eventually 30 filesvc_on c2 "$bob" ls /
ok && info "the enable reached fs $(since "$enabled_at") after keyadmin enable returned"
check "db2's audit names the admin from c2" output_has "$(net "$admin") from ${addr[c2]}" keyadmin_on db2 audit --db "$url2"

# ---------------------------------------------------------------------------------------------
step "db1 silent (its link down): a host that does not answer costs a connect timeout"
check "db1's link is down" ip -n "$(ns db1)" link set "sd${tag}1h" down
silent_at=$(now_ms)
check "frank lists / on fs from c1 (a new filesvc process looks the server up: db1 silent, db2 answers)" \
    output_has "frank.txt" filesvc_on c1 "$frank" ls /
ok && info "a new process's first lookup with db1 silent: $(since "$silent_at") (the connect timeout to db1 is 5 s, then db2)"
silent_at=$(now_ms)
check "alice keylogin on c1 again" output_has "logged in to the keyserver" keylogin_on c1 "$alice"
ok && info "keylogin with db1 silent: $(since "$silent_at") (no timeout: c1's keyserver kept its connection to db2)"

step "keylogout: alice leaves c1"
check "alice keylogout on c1" on c1 as "$alice" "$bin/keylogout" --socket "$work/c1/keyservsock"
expect_fail "keylist: c1's keyserver holds nothing for alice" "." \
    on c1 as "$alice" "$bin/keylist" --socket "$work/c1/keyservsock" --config "$work/c1/securerpc.conf"
expect_fail "alice's next call is refused: not logged in" "not logged in" filesvc_on c1 "$alice" ls /

finished=1
