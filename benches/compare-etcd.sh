#!/usr/bin/env bash
# compare-etcd.sh: runs the same server workloads against real etcd 3.4.23 and oxcd on this
# machine, alternating (etcd, then oxcd, per workload), and prints oxcd/etcd ratios with the raw
# figures; a JSON-lines summary goes to a file. Both servers get identical flags, a fresh data
# dir and fresh ports for every workload, and the load comes from one client, oxbench.
#
# Workloads (goals from the issue's acceptance list):
#   latency     2,000 puts, 1 client on 1 connection: mean and p99 latency     (goal <= 0.65x)
#   throughput  100,000 puts, 1,000 clients on 100 connections, 8-byte keys,
#               256-byte values: requests/sec                                   (goal >= 2x)
#               and VmRSS of the server right after them                        (goal <= 0.3x)
#   reads       100,000 reads of one key, 1,000 clients on 100 connections,
#               linearizable and serializable: requests/sec                     (goal >= 3x each)
#   watch       1,000 watchers of one key on 100 streams over 100 connections, then 10,000 puts
#               of that key (10M events): watch events received per second      (goal >= 2x)
#               once with 10 put clients and once with 1,000 ("flood", where the
#               watchers fall behind the puts and catch up from history)         (goal >= 2x)
#               Every watcher must get exactly the puts of its key, in revision
#               order, or the sample fails; also put-sent-to-event-received p99
#   lease-keepalive  100,000 keep-alives, 1,000 clients on 100 connections, each renewing its
#               own lease on a new stream per keep-alive: requests/sec          (goal >= 2x)
#   restart     load 1,000,000 keys, SIGTERM, start again on the same data dir:
#               time from spawn until a linearizable read succeeds              (goal <= 0.3x)
#   cluster     three members m0..m2 on 127.0.0.1 (fresh data dirs and ports, a unique
#               --initial-cluster-token, --initial-cluster-state new, default heartbeat and
#               election timeout); once every member is ready and all report the same leader,
#               on that one cluster:
#               the latency load, to the leader: mean and p99 latency           (goal <= 0.65x)
#               the throughput load, to the leader: requests/sec                (goal >= 2x)
#               the throughput load, spread over all three members: req/sec     (goal >= 2x)
#               oxbench gives connection i to endpoint i % 3 and client j to connection
#               j % conns, so 100 connections carry 340, 330 and 330 of 1,000 clients; the
#               followers forward those writes to the leader. The leader is the member whose
#               member_id is the leader all report in `etcdctl endpoint status -w json`; a
#               leader change during a load is logged. Also shown: spawn until all members are
#               ready and agree on a leader, and SIGTERM until all three exited (no goals)
# "Ready" is what `etcdctl endpoint health` checks (a linearizable read of key "health"),
# polled every 5 ms by `oxbench wait-ready`; etcdctl confirms it once afterwards.
#
# Usage: benches/compare-etcd.sh [--rounds N] [--out FILE] [--workloads LIST]
#   --rounds N        repeat every workload N times (default 1); the table shows medians and the
#                     min-max spread of each side
#   --out FILE        the JSON-lines summary (default target/compare-etcd/summary-<time>.jsonl)
#   --workloads LIST  comma-separated subset of latency,throughput,reads,watch,lease-keepalive,
#                     restart,cluster (default: all; they run in that order)
# Environment (all optional):
#   OXCD_CMP_QUICK=1              small sizes for a smoke run (seconds, not minutes)
#   OXCD_CMP_ROUNDS, OXCD_CMP_OUT   as --rounds, --out
#   OXCD_CMP_LATENCY_PUTS         puts in the latency workload and in the cluster's latency load
#                                                                         (2000; quick 200)
#   OXCD_CMP_PUTS                 puts in the throughput workload and in each of the cluster's
#                                 two throughput loads                    (100000; quick 2000)
#   OXCD_CMP_READS                reads per consistency                   (100000; quick 2000)
#   OXCD_CMP_RESTART_KEYS         keys loaded before the restart          (1000000; quick 5000)
#   OXCD_CMP_CLIENTS, OXCD_CMP_CONNS   concurrency of the throughput, reads, lease-keepalive,
#                                 restart and cluster throughput loads (1000 and 100; quick 100
#                                 and 10); the watch workload uses OXCD_CMP_CONNS connections too
#   OXCD_CMP_WATCHERS, OXCD_CMP_WATCH_STREAMS   (1000 and 100; quick 100 and 10)
#   OXCD_CMP_WATCH_PUTS           puts to the watched key                 (10000; quick 1000)
#   OXCD_CMP_WATCH_PUT_CLIENTS    put clients of the first watch run      (10)
#   OXCD_CMP_WATCH_FLOOD_CLIENTS  put clients of the flood watch run      (1000; quick 100)
#   OXCD_CMP_KEEPALIVES           keep-alives in lease-keepalive          (100000; quick 2000)
#   OXCD_CMP_KEY_SIZE, OXCD_CMP_VAL_SIZE   (8 and 256 bytes)
#   OXCD_CMP_ETCD_BIN, OXCD_CMP_OXCD_BIN   the two servers (/usr/bin/etcd, target/release/oxcd);
#                                 any binary that takes etcd's flags can stand on either side
#   OXCD_CMP_OXBENCH_BIN, OXCD_CMP_ETCDCTL_BIN   (target/release/oxbench, /usr/bin/etcdctl)
#   OXCD_CMP_SERVER_FLAGS         extra flags given to both servers, word-split
#   OXCD_CMP_TMPDIR               where the data dirs go (default $TMPDIR or /tmp); it should be
#                                 a real disk, as fsync cost is part of what is measured
#   OXCD_CMP_READY_TIMEOUT_SECS   how long a start may take (120; a cluster's start: until every
#                                 member serves and all agree on a leader)
#   OXCD_CMP_NO_BUILD=1           never run cargo; OXCD_CMP_KEEP=1 keeps the work dir
# When a cluster run fails, the members' full logs are copied next to the summary file
# (<summary>.cluster-<side>-<round>/m0.log ...) and their tails printed.
# The default oxcd and oxbench are built with `cargo build --release -p oxcd-server -p
# oxcd-benches` when missing or older than a source file.
# Summary file, one JSON object a line, told apart by "type": "run" (settings, binaries and their
# versions), "sample" (one figure of one server in one round, with the 1-minute load average at
# that moment), "error" (a measurement that failed), "result" (per metric: each side's median,
# min, max and sample count, the oxcd/etcd ratio of the medians, the goal and whether it is met).
# Exit status: 0 when every measurement was taken (goals missed do not fail the run), 1 when any
# measurement failed (the table says which), 2 on bad usage or a missing tool.
set -euo pipefail
export LC_ALL=C ETCDCTL_API=3

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    echo "compare-etcd: $*" >&2
    exit 2
}
log() { echo "compare-etcd: $*" >&2; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------------------------------------
# Configuration

ROUNDS=${OXCD_CMP_ROUNDS:-1}
OUT=${OXCD_CMP_OUT:-}
ALL_WORKLOADS="latency throughput reads watch lease-keepalive restart cluster"
WORKLOADS=${ALL_WORKLOADS// /,}
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
    --rounds=*) ROUNDS=${1#*=}; shift ;;
    --out) OUT=${2:?--out needs a file}; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    --workloads) WORKLOADS=${2:?--workloads needs a list}; shift 2 ;;
    --workloads=*) WORKLOADS=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
done

if [ "${OXCD_CMP_QUICK:-0}" = 1 ]; then
    quick=1 d_latency=200 d_puts=2000 d_reads=2000 d_restart=5000 d_clients=100 d_conns=10
    d_watchers=100 d_watch_streams=10 d_watch_puts=1000 d_watch_flood=100 d_keepalives=2000
else
    quick=0 d_latency=2000 d_puts=100000 d_reads=100000 d_restart=1000000 d_clients=1000
    d_conns=100 d_watchers=1000 d_watch_streams=100 d_watch_puts=10000 d_watch_flood=1000
    d_keepalives=100000
fi
LATENCY_PUTS=${OXCD_CMP_LATENCY_PUTS:-$d_latency}
PUTS=${OXCD_CMP_PUTS:-$d_puts}
READS=${OXCD_CMP_READS:-$d_reads}
RESTART_KEYS=${OXCD_CMP_RESTART_KEYS:-$d_restart}
CLIENTS=${OXCD_CMP_CLIENTS:-$d_clients}
CONNS=${OXCD_CMP_CONNS:-$d_conns}
WATCHERS=${OXCD_CMP_WATCHERS:-$d_watchers}
WATCH_STREAMS=${OXCD_CMP_WATCH_STREAMS:-$d_watch_streams}
WATCH_PUTS=${OXCD_CMP_WATCH_PUTS:-$d_watch_puts}
WATCH_PUT_CLIENTS=${OXCD_CMP_WATCH_PUT_CLIENTS:-10}
WATCH_FLOOD_CLIENTS=${OXCD_CMP_WATCH_FLOOD_CLIENTS:-$d_watch_flood}
KEEPALIVES=${OXCD_CMP_KEEPALIVES:-$d_keepalives}
KEY_SIZE=${OXCD_CMP_KEY_SIZE:-8}
VAL_SIZE=${OXCD_CMP_VAL_SIZE:-256}
READY_TIMEOUT_SECS=${OXCD_CMP_READY_TIMEOUT_SECS:-120}
read -r -a SERVER_FLAGS <<<"${OXCD_CMP_SERVER_FLAGS:-}"

for name in ROUNDS LATENCY_PUTS PUTS READS RESTART_KEYS CLIENTS CONNS WATCHERS WATCH_STREAMS \
    WATCH_PUTS WATCH_PUT_CLIENTS WATCH_FLOOD_CLIENTS KEEPALIVES KEY_SIZE VAL_SIZE \
    READY_TIMEOUT_SECS; do
    case ${!name} in
    '' | *[!0-9]* | 0) die "$name must be a positive integer, not '${!name}'" ;;
    esac
done
IFS=, read -r -a SELECTED <<<"$WORKLOADS"
for w in "${SELECTED[@]}"; do
    case " $ALL_WORKLOADS " in *" $w "*) ;; *) die "unknown workload: $w" ;; esac
done
selected() {
    local w
    for w in "${SELECTED[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

ETCD_BIN=${OXCD_CMP_ETCD_BIN:-/usr/bin/etcd}
OXCD_BIN=${OXCD_CMP_OXCD_BIN:-$REPO/target/release/oxcd}
OXBENCH=${OXCD_CMP_OXBENCH_BIN:-$REPO/target/release/oxbench}
ETCDCTL=${OXCD_CMP_ETCDCTL_BIN:-/usr/bin/etcdctl}

# ---------------------------------------------------------------------------------------------
# Building the defaults

# Succeeds when BIN is missing or older than any source that goes into it.
stale() {
    [ -x "$1" ] || return 0
    [ -n "$(cd "$REPO" && find engine wal server benches/src Cargo.toml Cargo.lock \
        -newer "$1" -type f -print -quit 2>/dev/null)" ]
}

build_if_needed() {
    local need=0
    if [ -z "${OXCD_CMP_OXCD_BIN:-}" ] && stale "$OXCD_BIN"; then need=1; fi
    if [ -z "${OXCD_CMP_OXBENCH_BIN:-}" ] && stale "$OXBENCH"; then need=1; fi
    [ "$need" = 1 ] || return 0
    if [ "${OXCD_CMP_NO_BUILD:-0}" = 1 ]; then
        die "oxcd or oxbench is missing or stale and OXCD_CMP_NO_BUILD=1"
    fi
    log "building: cargo build --release -p oxcd-server -p oxcd-benches"
    (cd "$REPO" && cargo build --release -p oxcd-server -p oxcd-benches) >&2 ||
        die "cargo build failed"
}

build_if_needed
# Bare names are looked up on PATH.
resolve() { command -v "$1" 2>/dev/null || die "not an executable: $1"; }
ETCD_BIN=$(resolve "$ETCD_BIN")
OXCD_BIN=$(resolve "$OXCD_BIN")
OXBENCH=$(resolve "$OXBENCH")
ETCDCTL=$(resolve "$ETCDCTL")

if [ -z "$OUT" ]; then
    OUT=$REPO/target/compare-etcd/summary-$(date +%Y%m%d-%H%M%S).jsonl
fi
mkdir -p "$(dirname "$OUT")"
: >"$OUT"

# ---------------------------------------------------------------------------------------------
# Work dir, cleanup

WORK=$(mktemp -d "${OXCD_CMP_TMPDIR:-${TMPDIR:-/tmp}}/oxcd-cmp.XXXXXX")
SAMPLES=$WORK/samples.tsv
: >"$SAMPLES"
SRV_PID=
CL_PIDS=()
FAILURES=0

cleanup() {
    local status=$? pid
    for pid in "$SRV_PID" ${CL_PIDS[@]+"${CL_PIDS[@]}"}; do
        if [ -n "$pid" ] && alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ "${OXCD_CMP_KEEP:-0}" = 1 ]; then
        log "work dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Small helpers

now_us() { echo "${EPOCHREALTIME//[.,]/}"; }

# Prints the JSON string literal of $1.
json_str() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# Prints the number that follows "KEY": in the one-line JSON file $1.
json_num() {
    sed -n "s/.*\"$2\":\\([-0-9.eE+]*\\).*/\\1/p" "$1" | head -n 1
}

# Prints the 99th percentile latency in milliseconds of the oxbench summary in $1.
p99_ms() {
    local secs
    secs=$(sed -n 's/.*{"latency_secs":\([-0-9.eE+]*\),"percentile":99\.0}.*/\1/p' "$1")
    if [ -n "$secs" ]; then awk -v s="$secs" 'BEGIN { printf "%.6f\n", s * 1000 }'; fi
}

# record SIDE ROUND METRIC VALUE: one sample, kept for the table and appended to the summary.
# A missing or non-numeric value counts as a failed measurement.
record() {
    case $4 in
    '' | *[!0-9.eE+-]*)
        fail "$1" "$2" "no value for $3"
        return 0
        ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$3" "$1" "$2" "$4" >>"$SAMPLES"
    printf '{"type":"sample","workload":"%s","round":%s,"server":"%s","metric":"%s","value":%s,"loadavg":%s}\n' \
        "$CURRENT_WORKLOAD" "$2" "$1" "$3" "$4" "$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT"
}

# fail SIDE ROUND WHAT: a measurement that could not be taken.
fail() {
    FAILURES=$((FAILURES + 1))
    log "FAILED ($1, round $2, $CURRENT_WORKLOAD): $3"
    printf '{"type":"error","workload":"%s","round":%s,"server":"%s","message":%s}\n' \
        "$CURRENT_WORKLOAD" "$2" "$1" "$(json_str "$3")" >>"$OUT"
}

# A port outside the ephemeral range (so client connections cannot hold it) that nothing
# answers on and that this run has not handed out yet.
# Sets PORT (not printed: a subshell would forget USED_PORTS).
USED_PORTS=" "
pick_port() {
    local tries=0
    while [ $tries -lt 200 ]; do
        tries=$((tries + 1))
        PORT=$((20000 + RANDOM % 12000))
        case $USED_PORTS in *" $PORT "*) continue ;; esac
        if ! (: <>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            USED_PORTS="$USED_PORTS$PORT "
            return 0
        fi
    done
    die "no free port found"
}

# Succeeds while process $1 exists and has not exited (a zombie has exited).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# ---------------------------------------------------------------------------------------------
# Servers: one at a time, described by SRV_* variables.

side_bin() { if [ "$1" = etcd ]; then echo "$ETCD_BIN"; else echo "$OXCD_BIN"; fi; }

# server_launch SIDE: spawns the server on SRV_DIR with SRV_CLIENT/SRV_PEER; no waiting.
server_launch() {
    local bin
    bin=$(side_bin "$1")
    "$bin" --name=cmp --data-dir="$SRV_DIR" \
        --listen-client-urls="$SRV_CLIENT" --advertise-client-urls="$SRV_CLIENT" \
        --listen-peer-urls="$SRV_PEER" --initial-advertise-peer-urls="$SRV_PEER" \
        --initial-cluster="cmp=$SRV_PEER" --initial-cluster-state=new \
        ${SERVER_FLAGS[@]+"${SERVER_FLAGS[@]}"} >>"$SRV_LOG" 2>&1 &
    SRV_PID=$!
}

# server_start SIDE: a fresh server on a fresh data dir and fresh ports, ready to serve.
# A port taken between the probe and the server's bind makes it exit at once: try again.
server_start() {
    local attempt deadline
    for attempt in 1 2 3; do
        SRV_DIR=$WORK/data-$1-$RANDOM$RANDOM
        SRV_LOG=$SRV_DIR.log
        pick_port
        SRV_CLIENT=http://127.0.0.1:$PORT
        pick_port
        SRV_PEER=http://127.0.0.1:$PORT
        deadline=$(($(now_us) + READY_TIMEOUT_SECS * 1000000))
        server_launch "$1"
        # Short waits, so a server that exits at once is noticed at once.
        while alive "$SRV_PID" && [ "$(now_us)" -lt "$deadline" ]; do
            if "$OXBENCH" wait-ready --endpoints="$SRV_CLIENT" --timeout-secs=1 \
                >/dev/null 2>>"$SRV_LOG"; then
                return 0
            fi
        done
        log "start attempt $attempt of $1 failed; log tail:"
        tail -n 10 "$SRV_LOG" >&2
        server_discard
    done
    return 1
}

# Stops the server with SIGTERM (SIGKILL after 60 s) and sets STOP_SECS to how long it took.
# Not to be run in a subshell: only this shell can reap the server.
server_stop() {
    stop_pids "$SRV_PID"
    SRV_PID=
}

# Stops the server and removes its data dir.
server_discard() {
    server_stop
    rm -rf "$SRV_DIR"
}

# bench_on ENDPOINTS FILE ARGS...: runs oxbench --json against ENDPOINTS (comma-separated);
# the summary goes to FILE.
bench_on() {
    local endpoints=$1 file=$2
    shift 2
    if "$OXBENCH" --endpoints="$endpoints" "$@" --json >"$file" 2>"$file.err"; then
        return 0
    fi
    log "oxbench $* failed: $(head -c 600 "$file.err")"
    return 1
}

# bench FILE ARGS...: runs oxbench --json against the server; the summary goes to FILE.
bench() { bench_on "$SRV_CLIENT" "$@"; }

ctl() { "$ETCDCTL" --endpoints="$SRV_CLIENT" --command-timeout=30s "$@"; }

vm_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
kib_to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f\n", k / 1024 }'; }

# ---------------------------------------------------------------------------------------------
# Clusters: three members at a time, described by CL_* variables (member i in element i).

CL_MEMBERS=3

# cluster_launch SIDE TOKEN: spawns the members on CL_DIR with CL_CLIENTS/CL_PEERS; no waiting.
cluster_launch() {
    local bin i initial=
    bin=$(side_bin "$1")
    for i in $(seq 0 $((CL_MEMBERS - 1))); do
        initial=$initial${initial:+,}m$i=${CL_PEERS[i]}
    done
    CL_PIDS=()
    for i in $(seq 0 $((CL_MEMBERS - 1))); do
        "$bin" --name="m$i" --data-dir="$CL_DIR/m$i" \
            --listen-client-urls="${CL_CLIENTS[i]}" --advertise-client-urls="${CL_CLIENTS[i]}" \
            --listen-peer-urls="${CL_PEERS[i]}" --initial-advertise-peer-urls="${CL_PEERS[i]}" \
            --initial-cluster="$initial" --initial-cluster-token="$2" \
            --initial-cluster-state=new \
            ${SERVER_FLAGS[@]+"${SERVER_FLAGS[@]}"} >>"$CL_DIR/m$i.log" 2>&1 &
        CL_PIDS[i]=$!
    done
}

# Succeeds while every member of the cluster runs; otherwise says which one exited.
cluster_alive() {
    local i
    for i in "${!CL_PIDS[@]}"; do
        alive "${CL_PIDS[i]}" || { log "m$i (pid ${CL_PIDS[i]}) has exited"; return 1; }
    done
}

# The client URLs of all members, comma-separated.
cluster_endpoints() {
    local IFS=,
    echo "${CL_CLIENTS[*]}"
}

# cluster_tails LINES: the last LINES lines of every member's log, to stderr.
cluster_tails() {
    local i
    for i in $(seq 0 $((CL_MEMBERS - 1))); do
        echo "--- m$i (pid ${CL_PIDS[i]:-?}, ${CL_CLIENTS[i]:-?}): $CL_DIR/m$i.log" >&2
        tail -n "$1" "$CL_DIR/m$i.log" >&2 2>/dev/null || true
    done
}

# cluster_leader: sets CL_LEADER to the index of the member every member names as its leader,
# from `etcdctl endpoint status -w json` on all endpoints; fails (setting CL_LEADER=) when they
# do not all answer or do not agree. IDs are compared as text: they are uint64, beyond jq's
# doubles.
cluster_leader() {
    local status rows endpoint member leader agreed='' count=0 i
    CL_LEADER=
    status=$("$ETCDCTL" --endpoints="$(cluster_endpoints)" --command-timeout=5s \
        endpoint status -w json 2>/dev/null) || return 1
    # One row per endpoint: "ENDPOINT MEMBER_ID LEADER".
    rows=$(printf '%s\n' "$status" | sed 's/{"Endpoint":/\n&/g' | sed -n \
        's/.*"Endpoint":"\([^"]*\)".*"member_id":\([0-9]*\).*"leader":\([0-9]*\).*/\1 \2 \3/p')
    while read -r endpoint member leader; do
        if [ -z "$leader" ] || [ "$leader" = 0 ]; then return 1; fi
        [ -z "$agreed" ] || [ "$agreed" = "$leader" ] || return 1
        agreed=$leader
        count=$((count + 1))
        if [ "$member" = "$leader" ]; then
            for i in $(seq 0 $((CL_MEMBERS - 1))); do
                [ "${CL_CLIENTS[i]}" = "$endpoint" ] && CL_LEADER=$i
            done
        fi
    done <<<"$rows"
    if [ "$count" != "$CL_MEMBERS" ] || [ -z "$CL_LEADER" ]; then
        CL_LEADER=
        return 1
    fi
}

# cluster_wait_ready SIDE DEADLINE_US: waits until every member serves a linearizable read and
# all agree on a leader; fails at once when a member exits, or when the deadline passes.
cluster_wait_ready() {
    local i
    for i in $(seq 0 $((CL_MEMBERS - 1))); do
        # Short waits, so a member that exits is noticed at once.
        until "$OXBENCH" wait-ready --endpoints="${CL_CLIENTS[i]}" --timeout-secs=1 \
            >/dev/null 2>>"$CL_DIR/m$i.log"; do
            cluster_alive || return 1
            [ "$(now_us)" -lt "$2" ] || { log "m$i of the $1 cluster is not ready"; return 1; }
        done
    done
    until cluster_leader; do
        cluster_alive || return 1
        [ "$(now_us)" -lt "$2" ] || { log "the $1 members do not agree on a leader"; return 1; }
        sleep 0.01
    done
}

# cluster_start SIDE: a fresh 3-member cluster on fresh data dirs and ports, every member ready
# and CL_LEADER set; sets CL_START_SECS to the time from the first spawn until then. A port taken
# between the probe and a member's bind makes that member exit at once: try again. The logs of
# a failed attempt are kept in CL_LOG_DEST/start-attempt-N.
cluster_start() {
    local attempt deadline start i
    for attempt in 1 2 3; do
        CL_DIR=$WORK/cluster-$1-$RANDOM$RANDOM
        mkdir -p "$CL_DIR"
        CL_CLIENTS=() CL_PEERS=()
        for i in $(seq 0 $((CL_MEMBERS - 1))); do
            pick_port
            CL_CLIENTS[i]=http://127.0.0.1:$PORT
            pick_port
            CL_PEERS[i]=http://127.0.0.1:$PORT
        done
        start=$(now_us)
        deadline=$((start + READY_TIMEOUT_SECS * 1000000))
        cluster_launch "$1" "oxcd-cmp-${CL_DIR##*-}"
        if cluster_wait_ready "$1" "$deadline"; then
            CL_START_SECS=$(awk -v us=$(($(now_us) - start)) 'BEGIN { printf "%.4f\n", us / 1e6 }')
            # etcdctl's own check, once, on every member.
            if "$ETCDCTL" --endpoints="$(cluster_endpoints)" --command-timeout=30s \
                endpoint health >/dev/null 2>&1; then
                return 0
            fi
            log "etcdctl endpoint health failed on the $1 cluster"
        fi
        log "start attempt $attempt of a $1 cluster failed; log tails:"
        cluster_tails 10
        cluster_save_logs "$CL_LOG_DEST/start-attempt-$attempt"
        cluster_discard
    done
    return 1
}

# Stops every member with SIGTERM at once (SIGKILL after 60 s) and sets STOP_SECS to how long
# the last one took. Not to be run in a subshell: only this shell can reap the members.
cluster_stop() {
    stop_pids "${CL_PIDS[@]}"
    CL_PIDS=()
}

# SIGTERMs every pid given (SIGKILL after 60 s each), reaps them and sets STOP_SECS to how long
# it took. Not to be run in a subshell: only this shell can reap its children.
stop_pids() {
    local start waited pid
    start=$(now_us)
    STOP_SECS=0
    [ $# -gt 0 ] && [ -n "$1" ] || return 0
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        waited=0
        while alive "$pid"; do
            if [ $waited -eq 6000 ]; then
                log "pid $pid ignored SIGTERM for 60 s; SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            sleep 0.01
            waited=$((waited + 1))
        done
        wait "$pid" 2>/dev/null || true
    done
    STOP_SECS=$(awk -v us=$(($(now_us) - start)) 'BEGIN { printf "%.3f\n", us / 1e6 }')
}

# cluster_save_logs DIR: copies every member's log to DIR.
cluster_save_logs() {
    local i
    mkdir -p "$1"
    for i in $(seq 0 $((CL_MEMBERS - 1))); do
        cp "$CL_DIR/m$i.log" "$1/" 2>/dev/null || true
    done
}

# Stops the cluster and removes its data dirs.
cluster_discard() {
    cluster_stop
    rm -rf "$CL_DIR"
}

# ---------------------------------------------------------------------------------------------
# Workloads: each takes SIDE ROUND, records its samples, and returns non-zero (after saying why)
# when it could not finish.

wl_latency() {
    local f=$WORK/latency-$1-$2.json
    server_start "$1" || return 1
    bench "$f" put --conns=1 --clients=1 --total="$LATENCY_PUTS" --key-size="$KEY_SIZE" \
        --val-size="$VAL_SIZE" --sequential-keys --key-space-size="$LATENCY_PUTS" || return 1
    record "$1" "$2" put_latency_mean_ms "$(awk -v s="$(json_num "$f" average_secs)" \
        'BEGIN { printf "%.6f\n", s * 1000 }')"
    record "$1" "$2" put_latency_p99_ms "$(p99_ms "$f")"
    record "$1" "$2" put_latency_qps "$(json_num "$f" requests_per_sec)"
    server_discard
}

wl_throughput() {
    local f=$WORK/throughput-$1-$2.json
    server_start "$1" || return 1
    bench "$f" put --conns="$CONNS" --clients="$CLIENTS" --total="$PUTS" \
        --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" --sequential-keys \
        --key-space-size="$PUTS" || return 1
    # Read at once: the figure is the memory the server holds for what it just served.
    local rss hwm
    rss=$(vm_kib "$SRV_PID" VmRSS)
    hwm=$(vm_kib "$SRV_PID" VmHWM)
    record "$1" "$2" put_qps "$(json_num "$f" requests_per_sec)"
    record "$1" "$2" put_p99_ms "$(p99_ms "$f")"
    record "$1" "$2" rss_after_puts_mib "$(kib_to_mib "$rss")"
    record "$1" "$2" peak_rss_mib "$(kib_to_mib "$hwm")"
    server_discard
}

wl_reads() {
    local c f value
    server_start "$1" || return 1
    value=$(head -c "$VAL_SIZE" /dev/zero | tr '\0' x)
    ctl put foo "$value" >/dev/null || { log "etcdctl put foo failed"; return 1; }
    for c in l s; do
        f=$WORK/reads-$c-$1-$2.json
        bench "$f" range foo --consistency="$c" --conns="$CONNS" --clients="$CLIENTS" \
            --total="$READS" || return 1
        record "$1" "$2" "range_${c}_qps" "$(json_num "$f" requests_per_sec)"
        record "$1" "$2" "range_${c}_p99_ms" "$(p99_ms "$f")"
    done
    server_discard
}

wl_restart() {
    local f=$WORK/restart-$1-$2.json start ready count
    server_start "$1" || return 1
    bench "$f" put --conns="$CONNS" --clients="$CLIENTS" --total="$RESTART_KEYS" \
        --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" --sequential-keys \
        --key-space-size="$RESTART_KEYS" || return 1
    record "$1" "$2" restart_load_qps "$(json_num "$f" requests_per_sec)"
    server_stop
    record "$1" "$2" restart_stop_secs "$STOP_SECS"
    record "$1" "$2" restart_data_dir_mib "$(kib_to_mib "$(du -sk "$SRV_DIR" | cut -f1)")"
    # The clock starts just before the spawn; oxbench starts polling right after it.
    start=$(now_us)
    server_launch "$1"
    if ! "$OXBENCH" wait-ready --endpoints="$SRV_CLIENT" --timeout-secs="$READY_TIMEOUT_SECS" \
        >/dev/null 2>>"$SRV_LOG"; then
        log "no answer after the restart; log tail:"
        tail -n 20 "$SRV_LOG" >&2
        return 1
    fi
    ready=$(($(now_us) - start))
    ctl endpoint health >/dev/null 2>&1 || { log "etcdctl endpoint health failed"; return 1; }
    # The range's count is the number of keys from "\0" on, whatever the limit.
    count=$(ctl get "" --from-key --keys-only --limit=1 -w json |
        sed -n 's/.*"count":\([0-9]*\).*/\1/p')
    if [ "$count" != "$RESTART_KEYS" ]; then
        log "after restart $1 holds ${count:-?} keys, not $RESTART_KEYS"
        return 1
    fi
    record "$1" "$2" restart_ready_secs \
        "$(awk -v us="$ready" 'BEGIN { printf "%.4f\n", us / 1e6 }')"
    server_discard
}

wl_watch() {
    local f
    server_start "$1" || return 1
    # Two runs on the same server: a modest put stream the watchers keep up with, then a flood.
    f=$WORK/watch-$1-$2.json
    bench "$f" watch --watchers="$WATCHERS" --streams="$WATCH_STREAMS" --put-total="$WATCH_PUTS" \
        --conns="$CONNS" --clients="$WATCH_PUT_CLIENTS" --key-size="$KEY_SIZE" \
        --val-size="$VAL_SIZE" || return 1
    record "$1" "$2" watch_events_per_sec "$(json_num "$f" events_per_sec)"
    record "$1" "$2" watch_event_p99_ms "$(p99_ms "$f")"
    record "$1" "$2" watch_create_ms "$(awk -v s="$(json_num "$f" creation_secs)" \
        'BEGIN { printf "%.6f\n", s * 1000 }')"
    f=$WORK/watch-flood-$1-$2.json
    bench "$f" watch --watchers="$WATCHERS" --streams="$WATCH_STREAMS" --put-total="$WATCH_PUTS" \
        --conns="$CONNS" --clients="$WATCH_FLOOD_CLIENTS" --key-size="$KEY_SIZE" \
        --val-size="$VAL_SIZE" || return 1
    record "$1" "$2" watch_flood_events_per_sec "$(json_num "$f" events_per_sec)"
    record "$1" "$2" watch_flood_event_p99_ms "$(p99_ms "$f")"
    server_discard
}

wl_lease_keepalive() {
    local f=$WORK/keepalive-$1-$2.json
    server_start "$1" || return 1
    bench "$f" lease-keepalive --conns="$CONNS" --clients="$CLIENTS" --total="$KEEPALIVES" ||
        return 1
    record "$1" "$2" keepalive_qps "$(json_num "$f" requests_per_sec)"
    record "$1" "$2" keepalive_p99_ms "$(p99_ms "$f")"
    server_discard
}

# cluster_put_run SIDE WHAT ENDPOINTS FILE ARGS...: one put load of the cluster workload, and a
# log line when the leader changed during it (the figure then mixes leaders and forwarding).
cluster_put_run() {
    local side=$1 what=$2 endpoints=$3 file=$4 before=$CL_LEADER
    shift 4
    bench_on "$endpoints" "$file" put "$@" --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" \
        --sequential-keys || return 1
    if ! cluster_leader; then
        log "$side: no agreed leader after the $what load"
        return 1
    fi
    if [ "$CL_LEADER" != "$before" ]; then
        log "$side: the leader changed from m$before to m$CL_LEADER during the $what load"
    fi
}

# The cluster workload: one cluster, then the latency load to the leader and the throughput
# load to the leader and to all members. Failing, it leaves the cluster running for
# run_workload to save the logs of.
wl_cluster() {
    local f=$WORK/cluster-$1-$2 leader
    CL_LOG_DEST=${OUT%.jsonl}.cluster-$1-$2
    cluster_start "$1" || return 1
    record "$1" "$2" cluster_start_secs "$CL_START_SECS"
    log "$1 cluster ready after ${CL_START_SECS}s; leader m$CL_LEADER at ${CL_CLIENTS[CL_LEADER]}"
    leader=${CL_CLIENTS[CL_LEADER]}
    cluster_put_run "$1" latency "$leader" "$f-latency.json" --conns=1 --clients=1 \
        --total="$LATENCY_PUTS" --key-space-size="$LATENCY_PUTS" || return 1
    record "$1" "$2" cluster_lat_mean_ms "$(awk -v s="$(json_num "$f-latency.json" \
        average_secs)" 'BEGIN { printf "%.6f\n", s * 1000 }')"
    record "$1" "$2" cluster_lat_p99_ms "$(p99_ms "$f-latency.json")"
    record "$1" "$2" cluster_lat_qps "$(json_num "$f-latency.json" requests_per_sec)"
    leader=${CL_CLIENTS[CL_LEADER]}
    cluster_put_run "$1" throughput-leader "$leader" "$f-leader.json" --conns="$CONNS" \
        --clients="$CLIENTS" --total="$PUTS" --key-space-size="$PUTS" || return 1
    record "$1" "$2" cluster_leader_qps "$(json_num "$f-leader.json" requests_per_sec)"
    record "$1" "$2" cluster_leader_p99_ms "$(p99_ms "$f-leader.json")"
    cluster_put_run "$1" throughput-all "$(cluster_endpoints)" "$f-all.json" --conns="$CONNS" \
        --clients="$CLIENTS" --total="$PUTS" --key-space-size="$PUTS" || return 1
    record "$1" "$2" cluster_all_qps "$(json_num "$f-all.json" requests_per_sec)"
    record "$1" "$2" cluster_all_p99_ms "$(p99_ms "$f-all.json")"
    cluster_discard
    record "$1" "$2" cluster_stop_secs "$STOP_SECS"
}

run_workload() {
    local workload=$1 round=$2 side
    CURRENT_WORKLOAD=$workload
    for side in etcd oxcd; do
        log "round $round/$ROUNDS: $workload on $side"
        if ! "wl_${workload//-/_}" "$side" "$round"; then
            fail "$side" "$round" "$workload did not complete (see the log above)"
            if [ -n "$SRV_PID" ]; then server_discard; fi
            if [ ${#CL_PIDS[@]} -gt 0 ]; then
                log "$side cluster log tails (full logs: $CL_LOG_DEST):"
                cluster_tails 20
                cluster_save_logs "$CL_LOG_DEST"
                cluster_discard
            fi
        fi
    done
}

# ---------------------------------------------------------------------------------------------
# Report

WATCH_SHAPE="$WATCHERS watchers/$WATCH_STREAMS streams, $WATCH_PUTS puts"
CLIENTS_SHAPE="$CLIENTS clients/$CONNS conns"
# metric|unit|goal (comparison and ratio, or "-")|description
METRICS=(
    "put_latency_mean_ms|ms|<=0.65|single put, 1 client: mean latency"
    "put_latency_p99_ms|ms|<=0.65|single put, 1 client: p99 latency"
    "put_latency_qps|req/s|-|single put, 1 client: requests/sec"
    "put_qps|req/s|>=2|$PUTS puts, $CLIENTS clients/$CONNS conns: requests/sec"
    "put_p99_ms|ms|-|$PUTS puts, $CLIENTS clients: p99 latency"
    "rss_after_puts_mib|MiB|<=0.3|VmRSS right after the $PUTS puts"
    "peak_rss_mib|MiB|-|VmHWM right after the $PUTS puts"
    "range_l_qps|req/s|>=3|linearizable reads of one key: requests/sec"
    "range_l_p99_ms|ms|-|linearizable reads: p99 latency"
    "range_s_qps|req/s|>=3|serializable reads of one key: requests/sec"
    "range_s_p99_ms|ms|-|serializable reads: p99 latency"
    "watch_events_per_sec|ev/s|>=2|$WATCH_SHAPE from $WATCH_PUT_CLIENTS clients: watch events/sec"
    "watch_event_p99_ms|ms|-|the same: put sent to event received, p99"
    "watch_create_ms|ms|-|creating the $WATCHERS watchers"
    "watch_flood_events_per_sec|ev/s|>=2|$WATCH_SHAPE from $WATCH_FLOOD_CLIENTS clients: events/sec"
    "watch_flood_event_p99_ms|ms|-|the same: put sent to event received, p99"
    "keepalive_qps|req/s|>=2|$KEEPALIVES lease keep-alives, $CLIENTS clients/$CONNS conns: req/sec"
    "keepalive_p99_ms|ms|-|lease keep-alives: p99 latency"
    "restart_ready_secs|s|<=0.3|restart with $RESTART_KEYS keys: spawn to ready"
    "restart_load_qps|req/s|-|loading the $RESTART_KEYS keys: requests/sec"
    "restart_stop_secs|s|-|SIGTERM to exit after the load"
    "restart_data_dir_mib|MiB|-|data dir size after the load"
    "cluster_lat_mean_ms|ms|<=0.65|3 members, put to the leader, 1 client: mean latency"
    "cluster_lat_p99_ms|ms|<=0.65|3 members, put to the leader, 1 client: p99 latency"
    "cluster_lat_qps|req/s|-|3 members, put to the leader, 1 client: requests/sec"
    "cluster_leader_qps|req/s|>=2|3 members, $PUTS puts to the leader, $CLIENTS_SHAPE: req/sec"
    "cluster_leader_p99_ms|ms|-|3 members, $PUTS puts to the leader: p99 latency"
    "cluster_all_qps|req/s|>=2|3 members, $PUTS puts over all members, $CLIENTS_SHAPE: req/sec"
    "cluster_all_p99_ms|ms|-|3 members, $PUTS puts over all members: p99 latency"
    "cluster_start_secs|s|-|3 members: first spawn until all serve and agree on a leader"
    "cluster_stop_secs|s|-|3 members: SIGTERM to all until the last exited"
)

metric_workload() {
    case $1 in
    cluster_*) echo cluster ;;
    put_latency_*) echo latency ;;
    put_* | rss_* | peak_*) echo throughput ;;
    range_*) echo reads ;;
    watch_*) echo watch ;;
    keepalive_*) echo lease-keepalive ;;
    restart_*) echo restart ;;
    esac
}

# stats METRIC SIDE: prints "median min max count" of the samples, or "nan nan nan 0".
stats() {
    awk -F'\t' -v m="$1" -v s="$2" '
        $1 == m && $2 == s && $4 != "" { v[n++] = $4 + 0 }
        END {
            if (n == 0) { print "nan nan nan 0"; exit }
            for (i = 1; i < n; i++) {
                x = v[i]
                for (j = i - 1; j >= 0 && v[j] > x; j--) v[j + 1] = v[j]
                v[j + 1] = x
            }
            med = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            printf "%.6g %.6g %.6g %d\n", med, v[0], v[n - 1], n
        }' "$SAMPLES"
}

report() {
    local line metric unit goal desc e_med e_min e_max e_n o_med o_min o_max o_n verdict ratio
    local wide=0
    if [ "$ROUNDS" -gt 1 ]; then wide=1; fi
    {
        echo
        echo "oxcd vs etcd 3.4.23 ($(nproc) cores; rounds: $ROUNDS; quick: $quick; medians)"
        echo "  etcd: $ETCD_BIN"
        echo "  oxcd: $OXCD_BIN"
        echo
        if [ $wide = 1 ]; then
            printf '%-26s %-6s %12s %12s %9s  %-15s %-17s %-17s\n' metric unit etcd oxcd \
                oxcd/etcd goal "etcd min-max" "oxcd min-max"
        else
            printf '%-26s %-6s %12s %12s %9s  %s\n' metric unit etcd oxcd oxcd/etcd goal
        fi
    }
    for line in "${METRICS[@]}"; do
        IFS='|' read -r metric unit goal desc <<<"$line"
        selected "$(metric_workload "$metric")" || continue
        read -r e_med e_min e_max e_n <<<"$(stats "$metric" etcd)"
        read -r o_med o_min o_max o_n <<<"$(stats "$metric" oxcd)"
        read -r ratio verdict <<<"$(awk -v e="$e_med" -v o="$o_med" -v g="$goal" 'BEGIN {
            if (e == "nan" || o == "nan" || e + 0 == 0) { print "null n/a"; exit }
            r = o / e
            v = "-"
            if (g ~ /^<=/) v = (r <= substr(g, 3) + 0) ? "met" : "MISSED"
            if (g ~ /^>=/) v = (r >= substr(g, 3) + 0) ? "met" : "MISSED"
            printf "%.4f %s\n", r, v
        }')"
        awk -v m="$metric" -v u="$unit" -v e="$e_med" -v o="$o_med" -v r="$ratio" -v g="$goal" \
            -v v="$verdict" -v wide="$wide" -v emin="$e_min" -v emax="$e_max" -v omin="$o_min" \
            -v omax="$o_max" '
            function f(x) {
                if (x == "nan" || x == "null") return "n/a"
                if (x >= 1000) return sprintf("%.0f", x)
                if (x >= 10) return sprintf("%.1f", x)
                if (x >= 1) return sprintf("%.2f", x)
                return sprintf("%.4f", x)
            }
            BEGIN {
                rs = (r == "null") ? "n/a" : sprintf("%.3fx", r)
                gs = (g == "-") ? "" : g "x " v
                if (wide)
                    printf "%-26s %-6s %12s %12s %9s  %-15s %-17s %-17s\n", m, u, f(e), f(o), rs,
                        gs, f(emin) "-" f(emax), f(omin) "-" f(omax)
                else
                    printf "%-26s %-6s %12s %12s %9s  %s\n", m, u, f(e), f(o), rs, gs
            }'
        printf '{"type":"result","metric":"%s","unit":"%s","description":%s,"goal":%s,"etcd":%s,"oxcd":%s,"ratio":%s,"verdict":"%s","etcd_min":%s,"etcd_max":%s,"oxcd_min":%s,"oxcd_max":%s,"etcd_samples":%s,"oxcd_samples":%s}\n' \
            "$metric" "$unit" "$(json_str "$desc")" "$(json_str "$goal")" "${e_med/nan/null}" \
            "${o_med/nan/null}" "$ratio" "$verdict" "${e_min/nan/null}" "${e_max/nan/null}" \
            "${o_min/nan/null}" "${o_max/nan/null}" "$e_n" "$o_n" >>"$OUT"
    done
    echo
    for line in "${METRICS[@]}"; do
        IFS='|' read -r metric unit goal desc <<<"$line"
        if selected "$(metric_workload "$metric")"; then
            printf '  %-26s %s\n' "$metric" "$desc"
        fi
    done
    echo
    # The load generator and the server alone keep about 2 runnable threads on this machine;
    # much more means something else competed for the cores while a figure was taken.
    awk -F'"loadavg":' 'NF > 1 { v = $2 + 0; if (n++ == 0 || v < lo) lo = v; if (v > hi) hi = v }
        END { if (n) printf "1-minute load average while sampling: %.2f-%.2f (%d cores)\n", lo, hi,
            cores }' cores="$(nproc)" "$OUT"
    if [ "$FAILURES" -gt 0 ]; then
        echo "$FAILURES measurement(s) failed; see the log above and the errors in the summary."
    fi
    echo "summary: $OUT"
}

# ---------------------------------------------------------------------------------------------
# Main

version_of() { "$1" --version 2>/dev/null | head -n 1 || true; }
printf '{"type":"run","started":%s,"quick":%s,"rounds":%s,"etcd_bin":%s,"etcd_version":%s,"oxcd_bin":%s,"oxcd_version":%s,"latency_puts":%s,"puts":%s,"reads":%s,"restart_keys":%s,"clients":%s,"conns":%s,"watchers":%s,"watch_streams":%s,"watch_puts":%s,"watch_put_clients":%s,"watch_flood_clients":%s,"keepalives":%s,"key_size":%s,"val_size":%s,"cores":%s,"workloads":%s}\n' \
    "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" "$quick" "$ROUNDS" "$(json_str "$ETCD_BIN")" \
    "$(json_str "$(version_of "$ETCD_BIN")")" "$(json_str "$OXCD_BIN")" \
    "$(json_str "$(version_of "$OXCD_BIN")")" "$LATENCY_PUTS" "$PUTS" "$READS" "$RESTART_KEYS" \
    "$CLIENTS" "$CONNS" "$WATCHERS" "$WATCH_STREAMS" "$WATCH_PUTS" "$WATCH_PUT_CLIENTS" \
    "$WATCH_FLOOD_CLIENTS" "$KEEPALIVES" "$KEY_SIZE" "$VAL_SIZE" "$(nproc)" \
    "$(json_str "$WORKLOADS")" >>"$OUT"

CURRENT_WORKLOAD=
for round in $(seq 1 "$ROUNDS"); do
    for workload in $ALL_WORKLOADS; do
        if selected "$workload"; then run_workload "$workload" "$round"; fi
    done
done
report
[ "$FAILURES" -eq 0 ] || exit 1
