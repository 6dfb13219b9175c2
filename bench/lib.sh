# Shell functions shared by the load scripts (proxy_load.sh, auth_load.sh, identity_load.sh);
# sourced, not run. The scripts set HERE (this directory) and ROOT (the repository) first.

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# need_vouch WANTED: when WANTED (the list of proxies or pairs) names vouch, makes sure
# VOUCH_BIN is an executable vouch, building it (cargo build --release -p vouch-cli,
# honouring CARGO_TARGET_DIR) when VOUCH_BIN is unset.
need_vouch() {
    [[ " $1 " == *" vouch "* ]] || return 0
    if [[ -z "${VOUCH_BIN:-}" ]]; then
        log "building vouch (cargo build --release -p vouch-cli)"
        (cd "$ROOT" && cargo build --release -p vouch-cli >&2)
        local target=${CARGO_TARGET_DIR:-$ROOT/target}
        [[ $target = /* ]] || target="$ROOT/$target"
        VOUCH_BIN="$target/release/vouch"
    fi
    [[ -x "$VOUCH_BIN" ]] || die "no vouch binary at $VOUCH_BIN"
}

# make_work NAME: a fresh work directory /tmp/NAME.XXXXXX in WORK, with empty RESULTS
# (steps.tsv) and NOTES (notes.md) files.
make_work() {
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    RESULTS="$WORK/steps.tsv"
    NOTES="$WORK/notes.md"
    : >"$RESULTS"
    : >"$NOTES"
    log "work directory $WORK"
}

# stop_pid PID [SIGNAL]: stops a process (TERM by default), KILL after 10 s, and reaps it.
stop_pid() {
    local pid=$1
    [[ -n "$pid" ]] || return 0
    kill -"${2:-TERM}" "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# budget NAME: the command prefix that runs a proxy in its own CPU budget of PROXY_CPUS CPUs
# (bench/in_budget; none when PROXY_CPUS is unset), in the array BUDGET.
budget() {
    BUDGET=()
    if [[ -n "${PROXY_CPUS:-}" ]]; then
        BUDGET=("$HERE/in_budget" "vouch-bench-$$-$1" "$PROXY_CPUS")
    fi
}

# remove_budgets NAME...: removes the cgroups budget NAME made.
remove_budgets() {
    [[ -n "${PROXY_CPUS:-}" ]] || return 0
    local name
    for name in "$@"; do
        "$HERE/in_budget" --remove "vouch-bench-$$-$name"
    done
}

cpu_of() { python3 "$LIB" cpu "$1"; }

# sipp_common TAG PORT: the options every SIPp run gets; its side files go to $WORK/TAG_*.
sipp_common() {
    local tag=$1 port=$2
    printf '%s\n' -i 127.0.0.1 -p "$port" -t u1 -nostdin -buff_size "$SIPP_BUF" \
        -trace_err -error_file "$WORK/${tag}_errors.log" \
        -trace_stat -fd 1 -stf "$WORK/${tag}_stat.csv" \
        -trace_screen -screen_file "$WORK/${tag}_screen.log"
}

# excerpt TITLE FILE LINES: a fenced excerpt (head) of FILE in the notes, when non-empty.
excerpt() {
    local title=$1 file=$2 n=$3
    [[ -s "$file" ]] || return 0
    {
        echo "$title ($(wc -l <"$file") lines, first $n):"
        echo '```'
        head -n "$n" "$file" | cut -c1-300
        echo '```'
    } >>"$NOTES"
}

# wait_quiet [PID...]: wait until processes other than PID... (by default PROXY_PID and UAS_PID,
# with their descendants) use at most QUIET_MAX CPUs, giving up once SECONDS reaches
# QUIET_DEADLINE; leaves the last reading in LAST_BACKGROUND. Other work on the host (builds,
# tests) competes for the same cores.
LAST_BACKGROUND=0
wait_quiet() {
    local pids=("$@")
    if ((${#pids[@]} == 0)); then
        [[ -n ${PROXY_PID:-} ]] && pids+=("$PROXY_PID")
        [[ -n ${UAS_PID:-} ]] && pids+=("$UAS_PID")
    fi
    while :; do
        LAST_BACKGROUND=$(python3 "$LIB" background 1.5 "${pids[@]}")
        if python3 -c "import sys; sys.exit(0 if $LAST_BACKGROUND <= $QUIET_MAX else 1)"; then
            return 0
        fi
        if ((SECONDS >= QUIET_DEADLINE)); then
            log "warning: the host is busy ($LAST_BACKGROUND CPUs used by other processes) and the ${QUIET_WAIT}s allowed for waiting are used up: measuring anyway"
            return 0
        fi
        log "host busy ($LAST_BACKGROUND CPUs used by other processes): waiting"
        sleep 2
    done
}

# call_steps NAME SIP_PORT UAS_PORT UAC_PORT SCENARIO [SIPP_ARGS...]: one step of calls per rate
# of RATES (rate × STEP_SECONDS calls) from a SIPp UAC running SCENARIO (with SIPP_ARGS) through
# the proxy at SIP_PORT to the SIPp UAS (UAS_PID) at UAS_PORT. For each step it records in
# RESULTS the calls, SIPp's counters, wall time, the proxy's CPU (PROXY_PID and descendants),
# SIPp's, the host's and the kernel drops at each socket, and in NOTES what went wrong; it stops
# when the proxy exits.
call_steps() {
    local name=$1 sip_port=$2 uas_port=$3 uac_port=$4 scenario=$5 rc
    local extra=("${@:6}")
    local rate
    for rate in $RATES; do
        local calls=$((rate * STEP_SECONDS))
        local limit=$((rate * 3 > 200 ? rate * 3 : 200))
        local tag="$name-uac-$rate"
        local cpu0 cpu1 ucpu0 ucpu1 host0 host1 t0 t1 uac_time
        mapfile -t common < <(sipp_common "$tag" "$uac_port")
        wait_quiet
        log "$name: $calls calls at $rate calls/s"
        # Kernel drops (full receive buffers) of the UAC's socket, polled while it exists.
        python3 "$LIB" watch "$uac_port" "$WORK/$tag.uac-drops" &
        local watch_pid=$!
        local drops0 uas_err0
        drops0=$(python3 "$LIB" drops "$sip_port" "$uas_port")
        uas_err0=$(stat -c %s "$WORK/$name-uas_errors.log" 2>/dev/null || echo 0)
        host0=$(python3 "$LIB" hostcpu)
        cpu0=$(cpu_of "$PROXY_PID")
        ucpu0=$(cpu_of "$UAS_PID")
        t0=$(date +%s.%N)
        rc=0
        TIMEFORMAT='%U %S'
        { time sipp "127.0.0.1:$sip_port" -sf "$scenario" "${common[@]}" "${extra[@]}" \
            -s bench -r "$rate" -rp 1000 -m "$calls" -l "$limit" -max_socket 4096 \
            -recv_timeout 10000 -timeout "$((STEP_SECONDS + 60))s" -timeout_error \
            >/dev/null 2>"$WORK/$tag.stderr"; } 2>"$WORK/$tag.time" || rc=$?
        t1=$(date +%s.%N)
        sleep "$SETTLE_SECONDS"
        cpu1=$(cpu_of "$PROXY_PID")
        ucpu1=$(cpu_of "$UAS_PID")
        host1=$(python3 "$LIB" hostcpu)
        kill "$watch_pid" 2>/dev/null || true
        wait "$watch_pid" 2>/dev/null || true
        local drops1 dp0 du0 dp1 du1 drops_uac uas_aborts
        drops1=$(python3 "$LIB" drops "$sip_port" "$uas_port")
        read -r dp0 du0 <<<"$drops0"
        read -r dp1 du1 <<<"$drops1"
        drops_uac=$(cat "$WORK/$tag.uac-drops" 2>/dev/null || echo 0)
        # Calls the UAS aborted during this step (unexpected message, e.g. a BYE before the ACK).
        uas_aborts=$(tail -c +"$((uas_err0 + 1))" "$WORK/$name-uas_errors.log" 2>/dev/null |
            grep -ao 'Aborting call' | wc -l || true)
        uac_time=$(tail -n 1 "$WORK/$tag.time")
        local created=0 successful=0 failed=0 retrans=0 rt_ms=nan dead=0 unexpected=0 \
            maxretrans=0 timeout=0 elapsed_s=0
        eval "$(python3 "$LIB" stat "$WORK/${tag}_stat.csv")"
        local wall sipp_cpu proxy_cpu host_cpu
        wall=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
        proxy_cpu=$(python3 -c "print(f'{$cpu1 - $cpu0:.2f}')")
        sipp_cpu=$(python3 -c "u, s = '$uac_time'.split(); print(f'{float(u) + float(s) + $ucpu1 - $ucpu0:.2f}')")
        host_cpu=$(python3 -c "print(f'{$host1 - $host0:.2f}')")
        printf '%s\t' "$name" "$rate" "$calls" "$created" "$successful" "$failed" "$retrans" \
            "$rc" "$wall" "$proxy_cpu" "$sipp_cpu" "$rt_ms" "$host_cpu" "$((dp1 - dp0))" \
            "$((du1 - du0))" "$drops_uac" >>"$RESULTS"
        echo "$uas_aborts" >>"$RESULTS"
        log "$name @ $rate/s: $created attempted, $successful successful, $failed failed, $retrans retransmissions, sipp exit $rc, ${wall}s, proxy CPU ${proxy_cpu}s, kernel drops proxy/UAS/UAC $((dp1 - dp0))/$((du1 - du0))/$drops_uac, UAS aborts $uas_aborts"
        if [[ $rc -ne 0 || $failed -ne 0 || $successful -ne $calls ]]; then
            KEEP_WORK=1
            {
                echo
                echo "#### $name at $rate calls/s: $failed failed, $successful of $calls successful, SIPp exit $rc"
                echo
                echo "SIPp failure counters: max UDP retransmissions $maxretrans, timeout on receive $timeout, unexpected message $unexpected; dead-call messages $dead."
                echo
            } >>"$NOTES"
            excerpt "SIPp UAC stderr" "$WORK/$tag.stderr" 20
            excerpt "SIPp UAC unexpected messages / errors (${tag}_errors.log)" "$WORK/${tag}_errors.log" 40
            grep -aiE 'warn|error|crit|alert' "$PROXY_LOG" >"$WORK/$tag.proxy-warnings" || true
            excerpt "$name log lines at warning level or above" "$WORK/$tag.proxy-warnings" 40
        fi
        if ! kill -0 "$PROXY_PID" 2>/dev/null; then
            echo "**$name exited during the $rate calls/s step.**" >>"$NOTES"
            tail -n 40 "$PROXY_LOG" >"$WORK/$name.log-tail"
            excerpt "$name log (tail)" "$WORK/$name.log-tail" 40
            PROXY_PID=""
            break
        fi
    done
}
