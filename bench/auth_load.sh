#!/usr/bin/env bash
# Digest authentication load benchmark: through vouch (auth on, MD5 only, relaxed digest-uri,
# users added with `vouch user add`) and through Kamailio (auth + auth_db on SQLite,
# bench/kamailio/auth_proxy.cfg), measure
#   (a) SIPp REGISTER with digest (REGISTER, 401, REGISTER with Authorization, 200) at a
#       fixed rate: proxy CPU seconds per 1,000 authenticated REGISTERs;
#   (b) SIPp calls with a 407 (INVITE, 407, ACK, INVITE with Proxy-Authorization, 200, ACK,
#       BYE) at rising rates: highest rate with no failed call, and proxy CPU seconds per
#       1,000 calls at FIXED_RATE.
# See bench/README.md.
#
#   bench/auth_load.sh
#
# Environment (all optional):
#   VOUCH_BIN        vouch binary; default: `cargo build --release -p vouch-cli` and
#                    ${CARGO_TARGET_DIR:-target}/release/vouch
#   PROXIES          proxies to measure, in order             (default "vouch kamailio")
#   USERS            digest accounts u1..uN the SIPp clients take in turn (default 100)
#   REG_RATE         REGISTER rate, registrations/s           (default 500)
#   REG_SECONDS      seconds of REGISTERs                     (default 10)
#   RATES            call rates, calls/s                      (default "250 500 1000 1500 2000")
#   STEP_SECONDS     seconds of calls per rate: calls = rate × STEP_SECONDS  (default 5)
#   FIXED_RATE       rate at which CPU per call is compared   (default 500; must be in RATES)
#   KAMAILIO_CHILDREN  Kamailio UDP worker processes          (default 2)
#   VOUCH_LOG_LEVEL  vouch --log-level                        (default info, vouch's default)
#   SETTLE_SECONDS   pause after each step before reading CPU (default 1)
#   QUIET_MAX        before the run and each step, wait until other processes use at most
#                    this many CPUs (default 0.3)...
#   QUIET_WAIT       ...waiting no longer than this many seconds in all (default 60)
#   PROXY_CPUS       when set (e.g. 0.5), each proxy runs limited to this many CPUs
#                    (bench/in_budget: a cgroup CPU quota, root needed), the same budget for
#                    vouch and Kamailio, so that SIPp (on the rest of the host) is not what
#                    saturates first                           (default: unlimited)
#   KEEP_WORK=1      keep the temporary work directory (logs) even when every call succeeded
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LIB="$HERE/benchlib.py"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

PROXIES=${PROXIES:-"vouch kamailio"}
USERS=${USERS:-100}
REG_RATE=${REG_RATE:-500}
REG_SECONDS=${REG_SECONDS:-10}
RATES=${RATES:-"250 500 1000 1500 2000"}
STEP_SECONDS=${STEP_SECONDS:-5}
FIXED_RATE=${FIXED_RATE:-500}
KAMAILIO_CHILDREN=${KAMAILIO_CHILDREN:-2}
VOUCH_LOG_LEVEL=${VOUCH_LOG_LEVEL:-info}
SETTLE_SECONDS=${SETTLE_SECONDS:-1}
QUIET_MAX=${QUIET_MAX:-0.3}
QUIET_WAIT=${QUIET_WAIT:-60}
PROXY_CPUS=${PROXY_CPUS:-}
# Large socket buffers for SIPp (capped by net.core.[rw]mem_max).
SIPP_BUF=4194304
PASSWORD=bench-secret

# The exact command, with every setting that shapes the run.
COMMAND="PROXIES=\"$PROXIES\" USERS=$USERS REG_RATE=$REG_RATE REG_SECONDS=$REG_SECONDS RATES=\"$RATES\" STEP_SECONDS=$STEP_SECONDS FIXED_RATE=$FIXED_RATE KAMAILIO_CHILDREN=$KAMAILIO_CHILDREN VOUCH_LOG_LEVEL=$VOUCH_LOG_LEVEL${VOUCH_BIN:+ VOUCH_BIN=$VOUCH_BIN}"
if [[ -z "${VOUCH_BIN:-}" && -n "${CARGO_TARGET_DIR:-}" ]]; then
    COMMAND+=" CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
fi
if [[ -n "$PROXY_CPUS" ]]; then
    COMMAND="PROXY_CPUS=$PROXY_CPUS $COMMAND"
fi
COMMAND+=" bench/auth_load.sh"


command -v sipp >/dev/null || die "sipp not found (Debian package sip-tester)"
command -v python3 >/dev/null || die "python3 not found"
case " $PROXIES " in *" kamailio "*) command -v sqlite3 >/dev/null || die "sqlite3 not found" ;; esac
case " $PROXIES " in *" kamailio "*) command -v kamailio >/dev/null || die "kamailio not found" ;; esac

need_vouch "$PROXIES"

make_work auth_load
REG_RESULTS="$WORK/register.tsv"
: >"$REG_RESULTS"

# SIPp -inf files: the callers u1..uN, and the callee "bench" (field 1 is the whole
# authentication keyword: SIPp cannot nest [fieldN] inside it).
{
    echo SEQUENTIAL
    for i in $(seq "$USERS"); do
        echo "u$i;[authentication username=u$i password=$PASSWORD]"
    done
} >"$WORK/users.csv"
printf 'SEQUENTIAL\nbench;[authentication username=bench password=%s]\n' "$PASSWORD" >"$WORK/callee.csv"

# Processes this script started, stopped by PID on exit.
PROXY_PID=""
UAS_PID=""
cleanup() {
    stop_pid "$UAS_PID"
    stop_pid "$PROXY_PID"
    UAS_PID=""
    PROXY_PID=""
    remove_budgets proxy
}
trap cleanup EXIT
trap 'exit 130' INT TERM



start_vouch() { # sip_port
    local port=$1 dir="$WORK/vouch"
    mkdir -p "$dir"
    cat >"$dir/vouch.toml" <<EOF
data_dir = "data"
domains = ["localhost"]
listen = ["udp:127.0.0.1:$port"]

# Digest on, as SIPp needs it: MD5 only (it reads only the first challenge), any digest-uri
# (it puts its transport target there). No signing, like the Kamailio config.
[auth]
algorithms = ["MD5"]
digest_uri = "relaxed"

[identity]
sign = false
http_listen = ""
cert_url = "http://127.0.0.1/unused"
EOF
    local u
    for u in bench $(seq -f 'u%g' "$USERS"); do
        "$VOUCH_BIN" user add "sip:$u@localhost" --password "$PASSWORD" --data-dir "$dir/data" \
            >/dev/null || die "vouch user add $u failed"
    done
    budget proxy
    "${BUDGET[@]}" "$VOUCH_BIN" proxy --config "$dir/vouch.toml" --log-level "$VOUCH_LOG_LEVEL" \
        >"$dir/stdout.log" 2>"$dir/vouch.log" </dev/null &
    PROXY_PID=$!
    PROXY_LOG="$dir/vouch.log"
    for _ in $(seq 300); do
        grep -q "vouch proxy ready" "$dir/stdout.log" 2>/dev/null && return 0
        kill -0 "$PROXY_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/stdout.log" "$dir/vouch.log" >&2
    die "vouch did not become ready"
}

start_kamailio() { # sip_port
    local port=$1 dir="$WORK/kamailio"
    mkdir -p "$dir/run"
    # The subscriber table of Kamailio 5.6 (table version 7), plain-text passwords.
    {
        cat <<'SQL'
CREATE TABLE version (
    id INTEGER PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)
);
INSERT INTO version (table_name, table_version) values ('version','1');
CREATE TABLE subscriber (
    id INTEGER PRIMARY KEY NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL,
    password VARCHAR(64) DEFAULT '' NOT NULL,
    ha1 VARCHAR(128) DEFAULT '' NOT NULL,
    ha1b VARCHAR(128) DEFAULT '' NOT NULL,
    CONSTRAINT subscriber_account_idx UNIQUE (username, domain)
);
CREATE INDEX subscriber_username_idx ON subscriber (username);
INSERT INTO version (table_name, table_version) values ('subscriber','7');
BEGIN;
SQL
        for u in bench $(seq -f 'u%g' "$USERS"); do
            echo "INSERT INTO subscriber (username, domain, password) VALUES ('$u', 'localhost', '$PASSWORD');"
        done
        echo "COMMIT;"
    } | sqlite3 "$dir/auth.sqlite" || die "sqlite3 failed"
    # sqlite:// followed by the absolute path: four slashes.
    sed "s|@DB_URL@|sqlite://$dir/auth.sqlite|" "$HERE/kamailio/auth_proxy.cfg" >"$dir/auth_proxy.cfg"
    budget proxy
    "${BUDGET[@]}" kamailio -f "$dir/auth_proxy.cfg" -DD -E -Y "$dir/run" \
        -l "udp:127.0.0.1:$port" -n "$KAMAILIO_CHILDREN" -m 1024 -M 16 \
        >"$dir/kamailio.log" 2>&1 </dev/null &
    PROXY_PID=$!
    PROXY_LOG="$dir/kamailio.log"
    for _ in $(seq 300); do
        kill -0 "$PROXY_PID" 2>/dev/null || break
        if ss -Hlun "sport = :$port" 2>/dev/null | grep -q .; then
            # Let every child finish its initialisation.
            sleep 1
            return 0
        fi
        sleep 0.1
    done
    cat "$dir/kamailio.log" >&2
    die "kamailio did not start"
}


run_proxy() { # name
    local name=$1 sip_port uas_port uac_port
    read -r sip_port uas_port uac_port < <(python3 "$LIB" ports 3)
    log "== $name on udp:127.0.0.1:$sip_port"
    case $name in
    vouch) start_vouch "$sip_port" ;;
    kamailio) start_kamailio "$sip_port" ;;
    *) die "unknown proxy $name" ;;
    esac
    log "$name running as PID $PROXY_PID ($(python3 "$LIB" pids "$PROXY_PID" | wc -w) processes)"

    # (a) Authenticated REGISTERs at REG_RATE for REG_SECONDS, the users in turn.
    local rc=0 regs=$((REG_RATE * REG_SECONDS)) rtag="$name-register-load"
    local cpu0 cpu1 t0 t1 reg_time
    mapfile -t common < <(sipp_common "$rtag" "$uac_port")
    wait_quiet
    log "$name: $regs authenticated REGISTERs at $REG_RATE/s"
    cpu0=$(cpu_of "$PROXY_PID")
    t0=$(date +%s.%N)
    TIMEFORMAT='%U %S'
    { time sipp "127.0.0.1:$sip_port" -sf "$HERE/sipp/register_auth.xml" "${common[@]}" \
        -inf "$WORK/users.csv" -r "$REG_RATE" -rp 1000 -m "$regs" -l "$((REG_RATE * 3))" \
        -recv_timeout 10000 -timeout "$((REG_SECONDS + 60))s" -timeout_error \
        >/dev/null 2>"$WORK/$rtag.stderr"; } 2>"$WORK/$rtag.time" || rc=$?
    t1=$(date +%s.%N)
    sleep "$SETTLE_SECONDS"
    cpu1=$(cpu_of "$PROXY_PID")
    reg_time=$(tail -n 1 "$WORK/$rtag.time")
    local created=0 successful=0 failed=0 retrans=0 rt_ms=nan dead=0 unexpected=0 \
        maxretrans=0 timeout=0 elapsed_s=0
    eval "$(python3 "$LIB" stat "$WORK/${rtag}_stat.csv")"
    local wall proxy_cpu sipp_cpu
    wall=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
    proxy_cpu=$(python3 -c "print(f'{$cpu1 - $cpu0:.2f}')")
    sipp_cpu=$(python3 -c "u, s = '$reg_time'.split(); print(f'{float(u) + float(s):.2f}')")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$REG_RATE" "$regs" \
        "$created" "$successful" "$failed" "$retrans" "$rc" "$wall" "$proxy_cpu" "$sipp_cpu" \
        "$rt_ms" >>"$REG_RESULTS"
    log "$name REGISTER @ $REG_RATE/s: $created attempted, $successful successful, $failed failed, $retrans retransmissions, sipp exit $rc, ${wall}s, proxy CPU ${proxy_cpu}s"
    if [[ $rc -ne 0 || $failed -ne 0 || $successful -ne $regs ]]; then
        KEEP_WORK=1
        echo "#### $name REGISTER at $REG_RATE/s: $failed failed, $successful of $regs successful, SIPp exit $rc" >>"$NOTES"
        excerpt "SIPp stderr" "$WORK/$rtag.stderr" 20
        excerpt "SIPp errors (${rtag}_errors.log)" "$WORK/${rtag}_errors.log" 40
    fi

    # (b) Register the callee "bench" (with digest) at the port the UAS will use, start it.
    rc=0
    mapfile -t common < <(sipp_common "$name-register" "$uas_port")
    sipp "127.0.0.1:$sip_port" -sf "$HERE/sipp/register_auth.xml" "${common[@]}" \
        -inf "$WORK/callee.csv" -m 1 -timeout 20s -timeout_error \
        >/dev/null 2>"$WORK/$name-register.stderr" || rc=$?
    if [[ $rc -ne 0 ]]; then
        cat "$WORK/$name-register.stderr" "$WORK/$name-register_errors.log" >&2 || true
        tail -n 40 "$PROXY_LOG" >&2
        die "REGISTER through $name failed (sipp exit $rc)"
    fi
    mapfile -t common < <(sipp_common "$name-uas" "$uas_port")
    sipp -sf "$HERE/sipp/uas.xml" "${common[@]}" >/dev/null 2>"$WORK/$name-uas.stderr" &
    UAS_PID=$!
    sleep 0.5
    kill -0 "$UAS_PID" 2>/dev/null || die "SIPp UAS did not start: $(cat "$WORK/$name-uas.stderr")"

    call_steps "$name" "$sip_port" "$uas_port" "$uac_port" "$HERE/sipp/uac_auth.xml" \
        -inf "$WORK/users.csv"
    excerpt "SIPp UAS unexpected messages / errors for $name" "$WORK/$name-uas_errors.log" 20
    cleanup
}

QUIET_DEADLINE=$((SECONDS + QUIET_WAIT))
wait_quiet
BACKGROUND=$LAST_BACKGROUND
log "background load before the run: $BACKGROUND CPUs busy"

for p in $PROXIES; do
    run_proxy "$p"
done

# ---------------------------------------------------------------------------------------------
STAMP=$(date +%Y-%m-%d_%H%M)
OUT="$HERE/results/auth_load-$STAMP.md"
mkdir -p "$HERE/results"
vouch_rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
vouch_dirty=$(cd "$ROOT" && git status --porcelain -- crates 2>/dev/null | grep -q . && echo " + uncommitted changes in crates/" || true)
{
    echo "# Digest authentication load: vouch vs Kamailio ($(date '+%Y-%m-%d %H:%M %Z'))"
    echo
    echo "Command (from the repository root):"
    echo
    echo '```'
    echo "$COMMAND"
    echo '```'
    echo
    echo "- Host: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(uname -sr)"
    [[ " $PROXIES " == *" vouch "* ]] &&
        echo "- vouch: \`$VOUCH_BIN\` (source tree at git $vouch_rev$vouch_dirty), UDP only, --log-level $VOUCH_LOG_LEVEL; [auth] algorithms = [\"MD5\"], digest_uri = \"relaxed\", realm = domain (localhost), $USERS + 1 users added with \`vouch user add\` (H(A1) stored); registrations persisted to its SQLite store write-behind (\`[registrar] persist_interval_ms\`, default 1000: changes coalesced per AoR, one transaction per interval)"
    [[ " $PROXIES " == *" kamailio "* ]] &&
        echo "- Kamailio: $(kamailio -v 2>/dev/null | head -1 | sed 's/^version: //; s/ *$//'), bench/kamailio/auth_proxy.cfg (auth + auth_db on SQLite, calculate_ha1 from plain-text passwords, auth_check flag 1), usrloc in memory, $KAMAILIO_CHILDREN UDP children, -m 1024 -M 16 (shared / private memory, MB)"
    echo "- SIPp: $(sipp -v 2>/dev/null | grep -m1 -o 'v[0-9][^ ]*' | sed 's/\.$//'), UDP (-t u1), scenarios bench/sipp/{register_auth,uas,uac_auth}.xml, MD5 qop=auth, users u1..u$USERS taken in turn (-inf, SEQUENTIAL); UAC and UAS on this host too"
    echo "- REGISTER step: $REG_RATE/s × $REG_SECONDS s (-r $REG_RATE -m $((REG_RATE * REG_SECONDS)) -recv_timeout 10 s); each registration is REGISTER, 401, REGISTER with Authorization, 200"
    echo "- Each call step: rate × $STEP_SECONDS calls; a call is INVITE, 407, ACK, INVITE with Proxy-Authorization, 200, ACK, BYE, 200 (-r rate -m calls -l 3×rate -recv_timeout 10 s: a call waiting over 10 s for a message fails); the 180 is optional; the UAC pauses 100 ms between ACK and BYE"
    if [[ -n "$PROXY_CPUS" ]]; then
        echo "- CPU budget: each proxy (all its processes) limited to $PROXY_CPUS CPUs by a cgroup CPU quota (bench/in_budget); SIPp runs unlimited on the rest of the host"
    fi
    echo "- Background load on the host just before the run (nothing of this benchmark running yet): $BACKGROUND of $(nproc) CPUs busy"
    echo "- Proxy CPU: utime+stime from /proc of the proxy process and all its descendants (Kamailio: every process), read before the step and $SETTLE_SECONDS s after SIPp exits"
    echo
    echo "## (a) Authenticated REGISTER at a fixed rate"
    echo
    python3 - "$REG_RESULTS" <<'PY'
import sys
print("| proxy | target REGISTER/s | registrations attempted | successful | failed | SIPp exit | achieved REGISTER/s | REGISTER→200 avg ms (2nd REGISTER) | SIPp retrans | proxy CPU s | **proxy CPU s / 1,000 REGISTERs** | SIPp CPU s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for line in open(sys.argv[1]):
    v = line.rstrip("\n").split("\t")
    if len(v) != 12:
        continue
    name, rate, n, created, ok, failed, retrans, rc, wall, cpu, sipp_cpu, rt = v
    per_k = float(cpu) / int(created) * 1000 if int(created) else float("nan")
    achieved = int(ok) / float(wall) if float(wall) > 0 else 0
    print(f"| {name} | {rate} | {created} | {ok} | {failed} | {rc} | {achieved:.0f} | {float(rt):.1f} | {retrans} | {float(cpu):.2f} | **{per_k:.3f}** | {float(sipp_cpu):.2f} |")
PY
    echo
    echo "A registration counts once: REGISTER, 401, REGISTER with Authorization, 200 (two requests at the proxy)."
    echo
    echo "## (b) Calls with a 407 at rising rates"
    echo
    python3 "$LIB" report "$RESULTS" "$FIXED_RATE"
    echo
    cat <<'EOF'
Each call here is INVITE, 407, ACK, INVITE with Proxy-Authorization, 200, ACK, BYE, 200:
the proxy verifies one digest per call and adds Proxy-Authentication-Info (vouch) to the 200.
Columns: *achieved calls/s* is successful calls over the wall time of the SIPp UAC run (which
includes the last calls' 100 ms pause and BYE, and any retransmission tail); *INVITE→200* is
SIPp's average (1 ms resolution); *kernel drops* are datagrams the kernel discarded because a
socket's receive buffer was full (/proc/net/udp): at the proxy's socket, the UAS's and the UAC's;
*UAS aborted calls* are calls the SIPp UAS gave up on an unexpected message (typically a BYE
that overtook a lost ACK); the UAC still counts them successful when its BYE is answered.
*SIPp CPU* is UAC + UAS CPU seconds; *other host CPU* is the host's busy CPU time during the
step minus the proxy's and SIPp's (kernel work not charged to a process, and any other
program running on the host). On two cores the proxy, the UAC and the UAS share the CPUs, so
a step fails when any of them is starved; CPU seconds per 1,000 calls is the comparison that
does not depend on that.
EOF
    if [[ -s "$NOTES" ]]; then
        echo
        echo "## Failures and errors"
        cat "$NOTES"
    fi
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then
        echo
        echo "Logs kept in \`$WORK\`."
    fi
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
log "written $OUT"
if [[ "${KEEP_WORK:-0}" != 1 ]]; then
    rm -rf "$WORK"
fi
