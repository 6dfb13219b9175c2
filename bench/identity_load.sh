#!/usr/bin/env bash
# Load benchmark for RFC 4474 identity: SIPp calls through a pair of proxies, the first signing
# (authentication service), the second verifying (verification service), at rising call rates:
# two vouch proxies, then two Kamailio auth_identity instances. Same step loop, measurements and
# report (bench/benchlib.py report) as proxy_load.sh; see bench/README.md.
#
#   bench/identity_load.sh
#
# Environment (all optional):
#   VOUCH_BIN        vouch binary; default: `cargo build --release -p vouch-cli` and
#                    ${CARGO_TARGET_DIR:-target}/release/vouch
#   PAIRS            pairs to measure, in order                (default "vouch kamailio")
#   RATES            call rates, calls/s                       (default "100 200 500 1000 2000")
#   STEP_SECONDS     seconds of calls per rate                 (default 10)
#   FIXED_RATE       rate at which CPU per call is compared    (default 500; must be in RATES)
#   USERS            callers at the signing vouch (digest)     (default 10)
#   KAMAILIO_CHILDREN  UDP worker processes of each Kamailio   (default 2)
#   VOUCH_LOG_LEVEL  vouch --log-level                         (default info)
#   SETTLE_SECONDS   pause after each step before reading CPU  (default 1)
#   QUIET_MAX, QUIET_WAIT  as in proxy_load.sh (default 0.3 CPUs, 60 s)
#   KAMAILIO_WORK    same (default): the Kamailio pair does the vouch pair's work — digest on
#                    the signer, stateful with Record-Route on both (bench/kamailio/
#                    identity_{signer_auth,verifier_rr}.cfg); stateless: the test suite's
#                    stateless auth_identity configurations, no digest
#   PROXY_CPUS       when set (e.g. 0.5), each of the four proxies runs limited to this many
#                    CPUs (bench/in_budget, a cgroup CPU quota; root needed)  (default: unlimited)
#   KEEP_WORK=1      keep the temporary work directory

# One compound command: bash reads it all before running it.
{
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LIB="$HERE/benchlib.py"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
KAMAILIO_CFG="$ROOT/crates/vouch-cli/tests/kamailio"

PAIRS=${PAIRS:-"vouch kamailio"}
RATES=${RATES:-"100 200 500 1000 2000"}
STEP_SECONDS=${STEP_SECONDS:-10}
FIXED_RATE=${FIXED_RATE:-500}
USERS=${USERS:-10}
KAMAILIO_CHILDREN=${KAMAILIO_CHILDREN:-2}
VOUCH_LOG_LEVEL=${VOUCH_LOG_LEVEL:-info}
SETTLE_SECONDS=${SETTLE_SECONDS:-1}
QUIET_MAX=${QUIET_MAX:-0.3}
QUIET_WAIT=${QUIET_WAIT:-60}
PROXY_CPUS=${PROXY_CPUS:-}
KAMAILIO_WORK=${KAMAILIO_WORK:-same}
PASSWORD=bench-Secret-1
SIPP_BUF=4194304

COMMAND="${PROXY_CPUS:+PROXY_CPUS=$PROXY_CPUS }KAMAILIO_WORK=$KAMAILIO_WORK PAIRS=\"$PAIRS\" RATES=\"$RATES\" STEP_SECONDS=$STEP_SECONDS FIXED_RATE=$FIXED_RATE USERS=$USERS KAMAILIO_CHILDREN=$KAMAILIO_CHILDREN VOUCH_LOG_LEVEL=$VOUCH_LOG_LEVEL${VOUCH_BIN:+ VOUCH_BIN=$VOUCH_BIN} bench/identity_load.sh"


for tool in sipp python3 openssl; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
case " $PAIRS " in *" kamailio "*) command -v kamailio >/dev/null || die "kamailio not found" ;; esac

need_vouch "$PAIRS"

make_work identity_load

# One RSA domain key and self-signed certificate for "localhost" (the From domain of every
# call) for both pairs: the verifiers trust (pin) the certificate itself.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/domain.key" -out "$WORK/domain.pem" \
    -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
openssl x509 -in "$WORK/domain.pem" -outform DER -out "$WORK/domain.der"
{
    echo SEQUENTIAL
    for i in $(seq "$USERS"); do
        echo "u$i;[authentication username=u$i password=$PASSWORD]"
    done
} >"$WORK/users.csv"
printf 'SEQUENTIAL\nbench;[authentication username=bench password=%s]\n' "$PASSWORD" >"$WORK/callee.csv"

# Processes this script started, stopped by PID on exit.
PIDS=()
cleanup() {
    local pid role
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    PIDS=()
    remove_budgets signer verifier
}

trap cleanup EXIT
trap 'exit 130' INT TERM

cpu_sum() { # pid...: CPU seconds of the processes and their descendants
    local total=0 pid
    for pid in "$@"; do
        total=$(python3 -c "print($total + $(python3 "$LIB" cpu "$pid"))")
    done
    echo "$total"
}


wait_ready() { # pid file pattern what
    for _ in $(seq 300); do
        grep -q "$3" "$2" 2>/dev/null && return 0
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 40 "$2" >&2
    die "$4 did not become ready"
}

wait_udp() { # pid port what
    for _ in $(seq 300); do
        kill -0 "$1" 2>/dev/null || break
        if ss -Hlun "sport = :$2" 2>/dev/null | grep -q .; then
            sleep 1 # let every child finish its initialisation
            return 0
        fi
        sleep 0.1
    done
    die "$3 did not start"
}

start_vouch() { # name sip_port toml-body
    local dir="$WORK/$1"
    mkdir -p "$dir"
    printf 'data_dir = "data"\ndomains = ["localhost"]\nlisten = ["udp:127.0.0.1:%s"]\n%s\n' \
        "$2" "$3" >"$dir/vouch.toml"
    budget "$1"
    "${BUDGET[@]}" "$VOUCH_BIN" proxy --config "$dir/vouch.toml" --log-level "$VOUCH_LOG_LEVEL" \
        >"$dir/stdout.log" 2>"$dir/vouch.log" </dev/null &
    PIDS+=($!)
    wait_ready "$!" "$dir/stdout.log" "vouch proxy ready" "vouch $1"
}

# The vouch pair: the signer authenticates the callers (digest, MD5 and any digest-uri as SIPp
# needs) and signs; "bench" is registered at the signer with the verifier's address as its
# Contact (a SIPp registration from that port before the verifier starts), so the signer's
# location service forwards the calls there; the verifier checks Identity (fetching the
# certificate from the signer's HTTP endpoint once) and delivers to the UAS registered there.
start_vouch_pair() { # signer_port verifier_port uas_port
    local http_port
    read -r http_port < <(python3 "$LIB" ports 1)
    mkdir -p "$WORK/signer"
    local u
    for u in bench $(seq -f 'u%g' "$USERS"); do
        "$VOUCH_BIN" user add "sip:$u@localhost" --password "$PASSWORD" \
            --data-dir "$WORK/signer/data" >/dev/null || die "vouch user add $u failed"
    done
    start_vouch signer "$1" "[auth]
algorithms = [\"MD5\"]
digest_uri = \"relaxed\"
[identity]
key = \"$WORK/domain.key\"
cert = \"$WORK/domain.pem\"
http_listen = \"127.0.0.1:$http_port\""
    SIGNER_PID=${PIDS[-1]}
    local rc=0
    mapfile -t common < <(sipp_common vouch-callee-register "$2")
    sipp "127.0.0.1:$1" -sf "$HERE/sipp/register_auth.xml" "${common[@]}" \
        -inf "$WORK/callee.csv" -m 1 -timeout 20s -timeout_error >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 0 ]] || die "registering bench at the signing vouch failed (sipp exit $rc)"
    start_vouch verifier "$2" "[auth]
enabled = false
[identity]
sign = false
http_listen = \"\"
cert_url = \"http://127.0.0.1/unused\"
[verification]
enabled = true
trust = [\"$WORK/domain.pem\"]"
    VERIFIER_PID=${PIDS[-1]}
    UAC_SCENARIO="$HERE/sipp/uac_auth.xml"
    UAC_ARGS=(-inf "$WORK/users.csv")
}

# The Kamailio pair: the test suite's auth_identity configurations (stateless: the signer
# forwards to the verifier, the verifier to the UAS; ACK and BYE go straight to the UAS, no
# Record-Route), the certificate served by python3's http.server.
start_kamailio_pair() { # signer_port verifier_port uas_port
    local http_port dir="$WORK/kamailio"
    read -r http_port < <(python3 "$LIB" ports 1)
    mkdir -p "$dir/www" "$dir/run-signer" "$dir/run-verifier"
    cp "$WORK/domain.der" "$dir/www/domain.der"
    python3 -m http.server --bind 127.0.0.1 --directory "$dir/www" "$http_port" \
        >"$dir/http.log" 2>&1 </dev/null &
    PIDS+=($!)
    local signer_cfg="$KAMAILIO_CFG/identity_signer.cfg"
    local verifier_cfg="$KAMAILIO_CFG/identity_verifier.cfg"
    if [[ $KAMAILIO_WORK == same ]]; then
        signer_cfg="$HERE/kamailio/identity_signer_auth.cfg"
        verifier_cfg="$HERE/kamailio/identity_verifier_rr.cfg"
    fi
    sed -e "s|@PORT@|$1|; s|@KEY@|$WORK/domain.key|; s|@CERT@|$WORK/domain.pem|" \
        -e "s|@CERT_URL@|http://127.0.0.1:$http_port/domain.der|; s|@NEXT_HOP@|$2|" \
        -e "s|@PASSWORD@|$PASSWORD|" \
        -e "s|^children=.*|children=$KAMAILIO_CHILDREN|" \
        "$signer_cfg" >"$dir/signer.cfg"
    sed -e "s|@PORT@|$2|; s|@CAINFO@|$WORK/domain.pem|; s|@NEXT_HOP@|$3|" \
        -e "s|^children=.*|children=$KAMAILIO_CHILDREN|" \
        "$verifier_cfg" >"$dir/verifier.cfg"
    local role port
    for role in verifier signer; do
        port=$([[ $role == signer ]] && echo "$1" || echo "$2")
        budget "$role"
        "${BUDGET[@]}" kamailio -f "$dir/$role.cfg" -DD -E -Y "$dir/run-$role" -m 256 -M 16 \
            >"$dir/$role.log" 2>&1 </dev/null &
        PIDS+=($!)
        wait_udp "$!" "$port" "kamailio $role"
        [[ $role == signer ]] && SIGNER_PID=$! || VERIFIER_PID=$!
    done
    if [[ $KAMAILIO_WORK == same ]]; then
        UAC_SCENARIO="$HERE/sipp/uac_auth.xml"
        UAC_ARGS=(-inf "$WORK/users.csv")
    else
        UAC_SCENARIO="$HERE/sipp/uac.xml"
        UAC_ARGS=()
    fi
}

run_pair() { # name
    local name=$1 signer_port verifier_port uas_port uac_port
    read -r signer_port verifier_port uas_port uac_port < <(python3 "$LIB" ports 4)
    log "== $name: signer udp:127.0.0.1:$signer_port, verifier udp:127.0.0.1:$verifier_port"
    case $name in
    vouch) start_vouch_pair "$signer_port" "$verifier_port" "$uas_port" ;;
    kamailio) start_kamailio_pair "$signer_port" "$verifier_port" "$uas_port" ;;
    *) die "unknown pair $name" ;;
    esac
    local rc=0
    if [[ $name == vouch ]]; then
        # The UAS registers (without digest) at the verifier, its home proxy.
        mapfile -t common < <(sipp_common "$name-register" "$uas_port")
        sipp "127.0.0.1:$verifier_port" -sf "$HERE/sipp/register.xml" "${common[@]}" \
            -s bench -m 1 -timeout 20s -timeout_error >/dev/null 2>&1 || rc=$?
        [[ $rc -eq 0 ]] || die "REGISTER of the UAS at the verifying vouch failed (sipp exit $rc)"
    fi
    mapfile -t common < <(sipp_common "$name-uas" "$uas_port")
    sipp -sf "$HERE/sipp/uas.xml" "${common[@]}" >/dev/null 2>"$WORK/$name-uas.stderr" &
    local uas_pid=$!
    PIDS+=("$uas_pid")
    sleep 0.5
    kill -0 "$uas_pid" 2>/dev/null || die "SIPp UAS did not start: $(cat "$WORK/$name-uas.stderr")"

    local rate
    for rate in $RATES; do
        local calls=$((rate * STEP_SECONDS)) limit=$((rate * 3 > 200 ? rate * 3 : 200))
        local tag="$name-uac-$rate" cpu0 cpu1 ucpu0 ucpu1 host0 host1 t0 t1 uac_time
        mapfile -t common < <(sipp_common "$tag" "$uac_port")
        wait_quiet "$SIGNER_PID" "$VERIFIER_PID" "$uas_pid"
        log "$name: $calls calls at $rate calls/s"
        local drops0 drops1
        drops0=$(python3 "$LIB" drops "$signer_port" "$verifier_port" "$uas_port" "$uac_port")
        host0=$(python3 "$LIB" hostcpu)
        cpu0=$(cpu_sum "$SIGNER_PID" "$VERIFIER_PID")
        ucpu0=$(cpu_sum "$uas_pid")
        t0=$(date +%s.%N)
        rc=0
        TIMEFORMAT='%U %S'
        { time sipp "127.0.0.1:$signer_port" -sf "$UAC_SCENARIO" "${common[@]}" "${UAC_ARGS[@]}" \
            -s bench -r "$rate" -rp 1000 -m "$calls" -l "$limit" -max_socket 4096 \
            -recv_timeout 10000 -timeout "$((STEP_SECONDS + 60))s" -timeout_error \
            >/dev/null 2>"$WORK/$tag.stderr"; } 2>"$WORK/$tag.time" || rc=$?
        t1=$(date +%s.%N)
        sleep "$SETTLE_SECONDS"
        cpu1=$(cpu_sum "$SIGNER_PID" "$VERIFIER_PID")
        ucpu1=$(cpu_sum "$uas_pid")
        host1=$(python3 "$LIB" hostcpu)
        drops1=$(python3 "$LIB" drops "$signer_port" "$verifier_port" "$uas_port" "$uac_port")
        uac_time=$(tail -n 1 "$WORK/$tag.time")
        local created=0 successful=0 failed=0 retrans=0 rt_ms=nan dead=0 unexpected=0 \
            maxretrans=0 timeout=0 elapsed_s=0
        eval "$(python3 "$LIB" stat "$WORK/${tag}_stat.csv")"
        local wall proxy_cpu sipp_cpu host_cpu drops
        wall=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
        proxy_cpu=$(python3 -c "print(f'{$cpu1 - $cpu0:.2f}')")
        sipp_cpu=$(python3 -c "u, s = '$uac_time'.split(); print(f'{float(u) + float(s) + $ucpu1 - $ucpu0:.2f}')")
        host_cpu=$(python3 -c "print(f'{$host1 - $host0:.2f}')")
        # Kernel drops: both proxies' sockets together, the UAS's, the UAC's.
        drops=$(python3 -c "a = [int(x) for x in '$drops0'.split()]; b = [int(x) for x in '$drops1'.split()]; d = [y - x for x, y in zip(a, b)]; print(d[0] + d[1], d[2], d[3], sep='\t')")
        printf '%s\t' "$name" "$rate" "$calls" "$created" "$successful" "$failed" "$retrans" \
            "$rc" "$wall" "$proxy_cpu" "$sipp_cpu" "$rt_ms" "$host_cpu" >>"$RESULTS"
        printf '%s\t0\n' "$drops" >>"$RESULTS"
        log "$name @ $rate/s: $created attempted, $successful successful, $failed failed, $retrans retransmissions, sipp exit $rc, ${wall}s, CPU of both proxies ${proxy_cpu}s"
        if [[ $rc -ne 0 || $failed -ne 0 || $successful -ne $calls ]]; then
            KEEP_WORK=1
            {
                echo
                echo "#### $name at $rate calls/s: $failed failed, $successful of $calls successful, SIPp exit $rc"
                echo
                echo "SIPp failure counters: max UDP retransmissions $maxretrans, timeout on receive $timeout, unexpected message $unexpected; dead-call messages $dead."
                echo
                echo "SIPp UAC errors (first 20 lines of ${tag}_errors.log):"
                echo '```'
                head -n 20 "$WORK/${tag}_errors.log" 2>/dev/null | cut -c1-300
                echo '```'
            } >>"$NOTES"
            # Past the first failing rate the pair is saturated: higher rates add nothing.
            break
        fi
    done
    cleanup
}


QUIET_DEADLINE=$((SECONDS + QUIET_WAIT))
wait_quiet $$
BACKGROUND=$LAST_BACKGROUND
for p in $PAIRS; do
    run_pair "$p"
done

STAMP=$(date +%Y-%m-%d_%H%M)
OUT="$HERE/results/identity_load-$STAMP.md"
mkdir -p "$HERE/results"
vouch_rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    echo "# Identity load: vouch vs Kamailio auth_identity, signer + verifier ($(date '+%Y-%m-%d %H:%M %Z'))"
    echo
    echo '```'
    echo "$COMMAND"
    echo '```'
    echo
    echo "- Host: $(nproc) CPUs, $(uname -sr); background load before the run: $BACKGROUND CPUs busy"
    [[ " $PAIRS " == *" vouch "* ]] &&
        echo "- vouch (git $vouch_rev): signer with digest (MD5, $USERS callers) and [identity] rsa-sha1; verifier with [verification] (certificate pinned, fetched once from the signer's HTTP endpoint); both record-route, so INVITE (twice: 407), ACK and BYE pass both"
    [[ " $PAIRS " == *" kamailio "* ]] &&
        if [[ $KAMAILIO_WORK == same ]]; then
            echo "- Kamailio: $(kamailio -v 2>/dev/null | head -1 | sed 's/^version: //; s/ *$//'), bench/kamailio/identity_{signer_auth,verifier_rr}.cfg, $KAMAILIO_CHILDREN children each: the vouch pair's work — digest (407, pv_auth_check) on the signer, tm and Record-Route on both, so INVITE (twice: 407), ACK and BYE pass both"
        else
            echo "- Kamailio: $(kamailio -v 2>/dev/null | head -1 | sed 's/^version: //; s/ *$//'), crates/vouch-cli/tests/kamailio/identity_{signer,verifier}.cfg, $KAMAILIO_CHILDREN children each, stateless: only the INVITE and its responses pass the pair (no digest, no Record-Route)"
        fi
    echo "- Proxy CPU is the sum over both proxies of the pair"
    if [[ -n "$PROXY_CPUS" ]]; then
        echo "- CPU budget: each proxy (all its processes) limited to $PROXY_CPUS CPUs by a cgroup CPU quota (bench/in_budget); SIPp runs unlimited"
    fi
    echo
    echo "## Results"
    echo
    python3 "$LIB" report "$RESULTS" "$FIXED_RATE"
    if [[ -s "$NOTES" ]]; then
        echo
        echo "## Failures"
        cat "$NOTES"
    fi
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then
        printf '\nLogs kept in `%s`.\n' "$WORK"
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
