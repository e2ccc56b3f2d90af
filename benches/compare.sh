#!/usr/bin/env bash
# squall beside Tornado, the bare mio responder (the hello ceiling and the
# chat fan-out floor) and hyper (the hello cases), in one run, as ratios.
#
#   benches/compare.sh [--smoke] [--repeat N] [--only CASES] [--servers LIST]
#                      [--duration S] [--wrk] [--max-minutes M] [--out DIR]
#
#   --smoke         tiny N, 1 s runs, 1 repetition: a check that everything runs (CI)
#   --repeat N      repetitions of every figure (default 3; the table shows medians)
#   --only CASES    comma-separated case names or prefixes (e.g. hello,idle-ws)
#   --servers LIST  comma-separated subset of squall,tornado,bare,hyper (default all)
#   --duration S    seconds per hello run (default 10; 1 with --smoke)
#   --wrk           also cross-check hello with wrk (apt-get installs it if missing)
#   --max-minutes M stop starting new runs after M minutes (default 45)
#   --out DIR       results directory (default bench-results/ at the repo root)
#   --squall-bin P  use this squall binary instead of building the repo's
#   --check         exit 1 if a run failed or squall broke a correctness claim
#                   (answers, deliveries, the cart, answering after idle);
#                   never on timings. CI runs --smoke --check.
#
# The Tornado venv lives in bench-results/venv (or $BENCH_VENV) whatever --out is.
#
# Servers run pinned to CPU 0 (taskset -c 0), the load generator on CPU 1.
# Every server is started fresh for each (case, repetition) and killed after;
# the repetitions rotate the order of the servers so drift hits all alike.
# Writes DIR/results.jsonl (every raw summary), DIR/table.md, DIR/table.json,
# DIR/latency.svg, and DIR/raw/ (each run's full output). See docs/benchmarks.md.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/bench-results"
SMOKE=0
REPEAT=""
ONLY=""
SERVERS="squall,tornado,bare,hyper"
DURATION=""
WRK=0
MAX_MIN=45
SQUALL_BIN=""
CHECK=0

while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --repeat) REPEAT="$2"; shift ;;
        --only) ONLY="$2"; shift ;;
        --servers) SERVERS="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --wrk) WRK=1 ;;
        --max-minutes) MAX_MIN="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --squall-bin) SQUALL_BIN="$2"; shift ;;
        --check) CHECK=1 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$SMOKE" = 1 ]; then
    REPEAT=${REPEAT:-1}; DURATION=${DURATION:-1}
else
    REPEAT=${REPEAT:-3}; DURATION=${DURATION:-10}
fi

mkdir -p "$OUT/raw" "$OUT/logs"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
START=$(date +%s)
say() { printf '[compare %4ds] %s\n' "$(( $(date +%s) - START ))" "$*"; }

# --- cleanup: kill exactly what we started ----------------------------------
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    sleep 0.2
    for p in "${PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null
    done
    PIDS=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# --- CPU pinning ---------------------------------------------------------------
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    PIN_SERVER=(taskset -c 0); PIN_LOAD=(taskset -c 1)
else
    say "WARNING: fewer than 2 CPUs or no taskset: running unpinned, figures are not comparable"
    PIN_SERVER=(); PIN_LOAD=()
fi

# --- Python venv with Tornado -----------------------------------------------
VENV="${BENCH_VENV:-$ROOT/bench-results/venv}"
want_server() { case ",$SERVERS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
if want_server tornado; then
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import tornado' 2>/dev/null; then
        say "creating $VENV and installing tornado"
        python3 -m venv "$VENV" && "$VENV/bin/pip" install -q tornado \
            || { say "ERROR: could not install tornado into $VENV"; exit 1; }
    fi
    say "tornado $("$VENV/bin/python" -c 'import tornado; print(tornado.version)')"
fi

# --- builds -------------------------------------------------------------------
TARGET_DIR="${CARGO_TARGET_DIR:-}"
say "building the loadgen"
if ! (cd "$ROOT/benches/loadgen" && cargo build --release -q) >"$OUT/logs/build-loadgen.log" 2>&1; then
    say "ERROR: the loadgen does not build (see $OUT/logs/build-loadgen.log)"; exit 1
fi
LG_TARGET="${TARGET_DIR:-$ROOT/benches/loadgen/target}"
LOADGEN="$LG_TARGET/release/loadgen"
BARE="$LG_TARGET/release/bare_responder"

SQUALL=""
if want_server squall && [ -n "$SQUALL_BIN" ]; then
    if [ -x "$SQUALL_BIN" ]; then
        SQUALL=$(cd "$(dirname "$SQUALL_BIN")" && pwd)/$(basename "$SQUALL_BIN")
        say "squall: using $SQUALL (not built here)"
    else
        say "SKIP squall: --squall-bin $SQUALL_BIN is not an executable"
    fi
elif want_server squall; then
    say "building squall (cargo build --release at the repo root)"
    if (cd "$ROOT" && cargo build --release -q) >"$OUT/logs/build-squall.log" 2>&1; then
        SQ_TARGET="${TARGET_DIR:-$ROOT/target}"
        if [ -x "$SQ_TARGET/release/squall" ]; then
            SQUALL="$SQ_TARGET/release/squall"
        else
            say "SKIP squall: the build produced no squall binary"
        fi
    else
        say "SKIP squall: cargo build --release failed (see $OUT/logs/build-squall.log)"
    fi
fi

# hyper 1.x on one thread (benches/hyper_peer): the issue states the hello
# targets against it. Its own crate, so its tokio and hyper never enter
# squall's or the loadgen's builds.
HYPER=""
if want_server hyper; then
    say "building the hyper peer"
    if (cd "$ROOT/benches/hyper_peer" && cargo build --release -q) >"$OUT/logs/build-hyper.log" 2>&1; then
        HYPER="${TARGET_DIR:-$ROOT/benches/hyper_peer/target}/release/hyper_peer"
    else
        say "SKIP hyper: the hyper peer does not build (see $OUT/logs/build-hyper.log)"
    fi
fi

ACTIVE=()
for s in squall tornado bare hyper; do
    want_server "$s" || continue
    if [ "$s" = squall ] && [ -z "$SQUALL" ]; then continue; fi
    if [ "$s" = hyper ] && [ -z "$HYPER" ]; then continue; fi
    ACTIVE+=("$s")
done
say "servers: ${ACTIVE[*]:-none}"
[ ${#ACTIVE[@]} -gt 0 ] || { say "nothing to run"; exit 1; }
if [ "$CHECK" = 1 ] && [ "${#ACTIVE[@]}" -lt "$(tr ',' '\n' <<<"$SERVERS" | grep -c .)" ]; then
    say "CHECK FAILED: a server asked for in --servers $SERVERS was skipped (see above)"; exit 1
fi

# --- servers ------------------------------------------------------------------
declare -A PORT=([squall]=18881 [tornado]=18882 [bare]=18883 [hyper]=18884)
SERVER_PID=""
start_server() {   # $1 = name; sets SERVER_PID or returns 1
    local name=$1 port=${PORT[$1]} cmd
    case "$name" in
        # Access logs off for both: Tornado's logging is not configured (its
        # INFO access log is dropped), squall's log level is warn.
        squall) cmd=(env RUST_LOG="${SQUALL_RUST_LOG:-warn}" "$SQUALL" --port "$port") ;;
        tornado) cmd=("$VENV/bin/python" "$ROOT/benches/tornado_peer/app.py" --port "$port") ;;
        bare) cmd=("$BARE" --port "$port") ;;
        hyper) cmd=("$HYPER" --port "$port") ;;
    esac
    "${PIN_SERVER[@]}" "${cmd[@]}" >>"$OUT/logs/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    if ! "$LOADGEN" probe --url "http://127.0.0.1:$port/healthz" --timeout 10 >/dev/null 2>&1; then
        say "SKIP $name for this run: no 200 from /healthz within 10 s (see $OUT/logs/$name.log)"
        stop_server
        return 1
    fi
}
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    local keep=()
    for p in "${PIDS[@]}"; do [ "$p" != "$SERVER_PID" ] && keep+=("$p"); done
    PIDS=("${keep[@]}")
    SERVER_PID=""
}

# --- cases --------------------------------------------------------------------
# name | servers | time limit s | loadgen args
#   a = all four (bare is the ceiling; hyper serves just /hello and
#   /healthz), f = squall, tornado and bare (bare is the fan-out floor: it
#   speaks just enough of the chat contract), c = squall+tornado (bare does
#   not serve the route, e.g. the cart).
# {U} = base URL, {PID} = server pid.
if [ "$SMOKE" = 1 ]; then
    CASES=(
        "hello-c50|a|30|hello --url {U}/hello --conns 10 --duration $DURATION --server-pid {PID}"
        "hello-pipe16|a|30|hello --url {U}/hello --conns 10 --pipeline 16 --duration $DURATION --server-pid {PID}"
        "longpoll-50|f|60|longpoll-fanout --url {U} --n 50 --rounds 2 --server-pid {PID}"
        "ws-50|f|60|ws-fanout --url {U} --n 50 --messages 3 --interval-ms 50 --server-pid {PID}"
        "idle-keepalive-200|a|60|idle --url {U} --n 200 --kind keepalive --server-pid {PID} --settle-ms 300"
        "idle-longpoll-200|f|60|idle --url {U} --n 200 --kind longpoll --server-pid {PID} --settle-ms 300"
        "idle-ws-200|f|60|idle --url {U} --n 200 --kind ws --server-pid {PID} --settle-ms 300"
        "cart-50|c|60|cart-race --url {U} --n 50 --server-pid {PID}"
        "storm-200|a|30|connect-storm --url {U}/hello --n 200 --timeout 10 --server-pid {PID}"
    )
else
    CASES=(
        "hello-c50|a|$((DURATION + 60))|hello --url {U}/hello --conns 50 --duration $DURATION --server-pid {PID}"
        "hello-c1000|a|$((DURATION + 90))|hello --url {U}/hello --conns 1000 --duration $DURATION --server-pid {PID}"
        "hello-pipe16|a|$((DURATION + 60))|hello --url {U}/hello --conns 50 --pipeline 16 --duration $DURATION --server-pid {PID}"
        "longpoll-1000|f|180|longpoll-fanout --url {U} --n 1000 --rounds 3 --server-pid {PID}"
        "longpoll-10000|f|400|longpoll-fanout --url {U} --n 10000 --rounds 3 --server-pid {PID}"
        "ws-1000|f|180|ws-fanout --url {U} --n 1000 --messages 10 --interval-ms 100 --server-pid {PID}"
        "ws-10000|f|400|ws-fanout --url {U} --n 10000 --messages 10 --interval-ms 100 --server-pid {PID}"
        "idle-keepalive-15000|a|300|idle --url {U} --n 15000 --kind keepalive --server-pid {PID}"
        "idle-longpoll-15000|f|300|idle --url {U} --n 15000 --kind longpoll --server-pid {PID}"
        "idle-ws-15000|f|300|idle --url {U} --n 15000 --kind ws --server-pid {PID}"
        "cart-200|c|60|cart-race --url {U} --n 200 --server-pid {PID}"
        "storm-15000|a|90|connect-storm --url {U}/hello --n 15000 --timeout 30 --server-pid {PID}"
    )
fi

selected() {   # $1 = case name
    [ -z "$ONLY" ] && return 0
    local IFS=,
    for p in $ONLY; do case "$1" in "$p"*) return 0 ;; esac; done
    return 1
}

run_one() {   # $1 case, $2 server, $3 rep, $4 limit, $5 args template
    local case=$1 server=$2 rep=$3 limit=$4 tmpl=$5
    local url="http://127.0.0.1:${PORT[$server]}"
    start_server "$server" || {
        printf '{"case":"%s","server":"%s","rep":%d,"result":{"error":"server did not start or answer /healthz"}}\n' \
            "$case" "$server" "$rep" >>"$RESULTS"
        return
    }
    local load1
    load1=$(cut -d' ' -f1 /proc/loadavg)
    local args=${tmpl//\{U\}/$url}
    args=${args//\{PID\}/$SERVER_PID}
    local raw="$OUT/raw/$case.$server.$rep.txt"
    # shellcheck disable=SC2086 # args is a word list on purpose
    timeout -k 5 "$limit" "${PIN_LOAD[@]}" "$LOADGEN" $args >"$raw" 2>&1
    local rc=$?
    local json
    json=$(grep '^{' "$raw" | tail -n 1)
    if [ -z "$json" ]; then
        json="{\"error\":\"no summary line (exit $rc; see raw/$case.$server.$rep.txt)\"}"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        say "WARNING: $server died during $case (see $OUT/logs/$server.log)"
    fi
    printf '{"case":"%s","server":"%s","rep":%d,"load1":%s,"result":%s}\n' \
        "$case" "$server" "$rep" "$load1" "$json" >>"$RESULTS"
    say "$case $server #$rep: $(grep -v '^{' "$raw" | tail -n 1)"
    stop_server
}

say "mode: $([ "$SMOKE" = 1 ] && echo smoke || echo full), $REPEAT repetition(s), results in $OUT"
STOPPED=0
for spec in "${CASES[@]}"; do
    IFS='|' read -r case who limit tmpl <<<"$spec"
    selected "$case" || continue
    servers=()
    for s in "${ACTIVE[@]}"; do
        if [ "$who" = c ] && [ "$s" = bare ]; then continue; fi
        if [ "$who" != a ] && [ "$s" = hyper ]; then continue; fi
        servers+=("$s")
    done
    for rep in $(seq 1 "$REPEAT"); do
        # Rotate the order each repetition.
        k=$(( (rep - 1) % ${#servers[@]} ))
        order=("${servers[@]:$k}" "${servers[@]:0:$k}")
        for s in "${order[@]}"; do
            if [ $(( $(date +%s) - START )) -gt $(( MAX_MIN * 60 )) ]; then
                [ "$STOPPED" = 1 ] || say "time limit of $MAX_MIN min reached: no new runs"
                STOPPED=1
                continue
            fi
            run_one "$case" "$s" "$rep" "$limit" "$tmpl"
        done
    done
done

# --- optional wrk cross-check ---------------------------------------------------
if [ "$WRK" = 1 ] && [ "$STOPPED" = 0 ]; then
    if ! command -v wrk >/dev/null; then
        say "installing wrk (apt-get)"
        (apt-get install -y -q wrk || (apt-get update -q && apt-get install -y -q wrk)) >"$OUT/logs/apt-wrk.log" 2>&1
    fi
    if command -v wrk >/dev/null; then
        for s in "${ACTIVE[@]}"; do
            for rep in $(seq 1 "$REPEAT"); do
                start_server "$s" || continue
                raw="$OUT/raw/wrk-hello-c50.$s.$rep.txt"
                timeout -k 5 $((DURATION + 30)) "${PIN_LOAD[@]}" wrk -t1 -c50 -d"${DURATION}s" \
                    "http://127.0.0.1:${PORT[$s]}/hello" >"$raw" 2>&1
                rps=$(awk '/^Requests\/sec:/ {print $2}' "$raw")
                printf '{"case":"wrk-hello-c50","server":"%s","rep":%d,"result":{"scenario":"wrk","rps":%s}}\n' \
                    "$s" "$rep" "${rps:-null}" >>"$RESULTS"
                say "wrk-hello-c50 $s #$rep: ${rps:-?} req/s"
                stop_server
            done
        done
    else
        say "SKIP wrk: not installable here"
    fi
fi

cleanup
if [ "$CHECK" = 1 ]; then
    python3 "$ROOT/benches/summarize.py" "$RESULTS" "$OUT" --check
else
    python3 "$ROOT/benches/summarize.py" "$RESULTS" "$OUT"
fi
