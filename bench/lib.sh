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
