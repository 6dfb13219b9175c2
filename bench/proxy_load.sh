#!/usr/bin/env bash
# Load benchmark: SIPp calls (INVITE/100/180/200/ACK/BYE/200, UDP) through vouch and through
# Kamailio used as a plain record-routing stateful proxy + registrar, at rising call rates.
# See bench/README.md.
#
#   bench/proxy_load.sh
#
# Environment (all optional):
#   VOUCH_BIN        vouch binary; default: `cargo build --release -p vouch-cli` and
#                    ${CARGO_TARGET_DIR:-target}/release/vouch
#   PROXIES          proxies to measure, in order             (default "vouch kamailio")
#   RATES            call rates, calls/s                      (default "200 500 1000 2000 3000")
#   STEP_SECONDS     seconds of calls per rate: calls = rate × STEP_SECONDS  (default 10)
#   FIXED_RATE       rate at which CPU per call is compared   (default 1000; must be in RATES)
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

# The whole script is one compound command: bash parses it completely before running it, so
# editing this file while a run is going on cannot change that run.
{
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LIB="$HERE/benchlib.py"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

PROXIES=${PROXIES:-"vouch kamailio"}
RATES=${RATES:-"200 500 1000 2000 3000"}
STEP_SECONDS=${STEP_SECONDS:-10}
FIXED_RATE=${FIXED_RATE:-1000}
KAMAILIO_CHILDREN=${KAMAILIO_CHILDREN:-2}
VOUCH_LOG_LEVEL=${VOUCH_LOG_LEVEL:-info}
SETTLE_SECONDS=${SETTLE_SECONDS:-1}
QUIET_MAX=${QUIET_MAX:-0.3}
QUIET_WAIT=${QUIET_WAIT:-60}
PROXY_CPUS=${PROXY_CPUS:-}
# Large socket buffers for SIPp (capped by net.core.[rw]mem_max).
SIPP_BUF=4194304

# The exact command, with every setting that shapes the run.
COMMAND="PROXIES=\"$PROXIES\" RATES=\"$RATES\" STEP_SECONDS=$STEP_SECONDS FIXED_RATE=$FIXED_RATE KAMAILIO_CHILDREN=$KAMAILIO_CHILDREN VOUCH_LOG_LEVEL=$VOUCH_LOG_LEVEL${VOUCH_BIN:+ VOUCH_BIN=$VOUCH_BIN}"
if [[ -z "${VOUCH_BIN:-}" && -n "${CARGO_TARGET_DIR:-}" ]]; then
    COMMAND+=" CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
fi
if [[ -n "$PROXY_CPUS" ]]; then
    COMMAND="PROXY_CPUS=$PROXY_CPUS $COMMAND"
fi
COMMAND+=" bench/proxy_load.sh"


command -v sipp >/dev/null || die "sipp not found (Debian package sip-tester)"
command -v python3 >/dev/null || die "python3 not found"
case " $PROXIES " in *" kamailio "*) command -v kamailio >/dev/null || die "kamailio not found" ;; esac

need_vouch "$PROXIES"

make_work proxy_load

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

# The plain routing path, like the Kamailio config: no digest, no signing.
[auth]
enabled = false

[identity]
sign = false
http_listen = ""
cert_url = "http://127.0.0.1/unused"
EOF
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
    budget proxy
    "${BUDGET[@]}" kamailio -f "$HERE/kamailio/proxy.cfg" -DD -E -Y "$dir/run" \
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

    # Register the UAS's address (from the port it will listen on), then start it.
    local rc=0
    mapfile -t common < <(sipp_common "$name-register" "$uas_port")
    sipp "127.0.0.1:$sip_port" -sf "$HERE/sipp/register.xml" "${common[@]}" \
        -s bench -m 1 -timeout 20s -timeout_error \
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

    call_steps "$name" "$sip_port" "$uas_port" "$uac_port" "$HERE/sipp/uac.xml"
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
OUT="$HERE/results/proxy_load-$STAMP.md"
mkdir -p "$HERE/results"
vouch_rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
vouch_dirty=$(cd "$ROOT" && git status --porcelain -- crates 2>/dev/null | grep -q . && echo " + uncommitted changes in crates/" || true)
{
    echo "# Proxy load: vouch vs Kamailio ($(date '+%Y-%m-%d %H:%M %Z'))"
    echo
    echo "Command (from the repository root):"
    echo
    echo '```'
    echo "$COMMAND"
    echo '```'
    echo
    echo "- Host: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(uname -sr)"
    [[ " $PROXIES " == *" vouch "* ]] &&
        echo "- vouch: \`$VOUCH_BIN\` (source tree at git $vouch_rev$vouch_dirty), UDP only, --log-level $VOUCH_LOG_LEVEL"
    [[ " $PROXIES " == *" kamailio "* ]] &&
        echo "- Kamailio: $(kamailio -v 2>/dev/null | head -1 | sed 's/^version: //; s/ *$//'), bench/kamailio/proxy.cfg, $KAMAILIO_CHILDREN UDP children, -m 1024 -M 16 (shared / private memory, MB)"
    echo "- SIPp: $(sipp -v 2>/dev/null | grep -m1 -o 'v[0-9][^ ]*' | sed 's/\.$//'), UDP (-t u1), scenarios bench/sipp/{register,uas,uac}.xml; UAC and UAS on this host too"
    echo "- Each step: rate × $STEP_SECONDS calls (-r rate -m calls -l 3×rate -recv_timeout 10 s: a call waiting over 10 s for a message fails); the 180 is optional; the UAC pauses 100 ms between ACK and BYE"
    if [[ -n "$PROXY_CPUS" ]]; then
        echo "- CPU budget: each proxy (all its processes) limited to $PROXY_CPUS CPUs by a cgroup CPU quota (bench/in_budget); SIPp runs unlimited on the rest of the host"
    fi
    echo "- Background load on the host just before the run (nothing of this benchmark running yet): $BACKGROUND of $(nproc) CPUs busy"
    echo "- Proxy CPU: utime+stime from /proc of the proxy process and all its descendants (Kamailio: every process), read before the step and $SETTLE_SECONDS s after SIPp exits"
    echo
    echo "## Results"
    echo
    python3 "$LIB" report "$RESULTS" "$FIXED_RATE"
    echo
    cat <<'EOF'
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
exit 0
}
