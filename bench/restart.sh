#!/usr/bin/env bash
# Restart latency: how long after a SIGKILL berth and containerd answer again, in the same run.
#
#   cargo build --release --workspace --bins
#   bash bench/restart.sh [ROUNDS]
#
# Both get the same history first: one busybox image (bench/lib.sh's tiny image), TAGS image
# tags (metadata writes and events; default 300) and 5 running containers. Then:
#   - each berth service SIGKILLed ROUNDS times; berthd restarts it on its own. Time: kill ->
#     a Health sent at once is answered by the new process (target/release/restart_bench);
#   - berthd itself SIGKILLed ROUNDS times and started again by this script, as an init
#     system would. Time: kill -> every service and berthd's control socket answer;
#   - containerd SIGKILLed ROUNDS times and started again by this script. Time: kill -> its
#     socket accepts a connection, and kill -> `ctr version` succeeds.
# Containers must outlive all of it: the script checks the 5 of each are still running.
# Everything lives in a private temp dir (own root, state, sockets), removed at the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROUNDS=${1:-10}
TAGS=${TAGS:-300}
BIN=${BERTH_BIN:-${CARGO_TARGET_DIR:-target}/release}
for b in berth berthd berth-runtime berth-shim restart_bench; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cargo build --release --workspace --bins" >&2; exit 1; }
done
HAVE_CTR=1
command -v containerd >/dev/null && command -v ctr >/dev/null || HAVE_CTR=0

T=$(mktemp -d /var/tmp/berth-bench-restart.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    set +e +o pipefail
    [ $rc = 0 ] || { cp "$T/berthd.log" /tmp/berth-restart-bench.log 2>/dev/null && echo "berthd's log: /tmp/berth-restart-bench.log" >&2; }
    kill_berth_containers
    if [ $HAVE_CTR = 1 ] && [ -S "$T/ctd/containerd.sock" ]; then
        for i in 1 2 3 4 5; do command ctr --address "$T/ctd/containerd.sock" -n bench tasks kill -s 9 "restart-k$i" 2>/dev/null; done
        sleep 0.5
        for i in 1 2 3 4 5; do
            command ctr --address "$T/ctd/containerd.sock" -n bench tasks rm -f "restart-k$i" >/dev/null 2>&1
            command ctr --address "$T/ctd/containerd.sock" -n bench containers rm "restart-k$i" 2>/dev/null
        done
    fi
    pkill -9 -f "containerd-shim-runc-v2 -namespace bench -id restart-k" 2>/dev/null || true
    # The runc state containerd's shims keep outside our temp dir (/run/containerd/runc).
    for i in 1 2 3 4 5; do runc --root /run/containerd/runc/bench delete --force "restart-k$i" 2>/dev/null; done
    for p in "${PIDS[@]}" ${BERTHD:-} ${CTD:-}; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    remove_leftovers
}
trap cleanup EXIT

now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
stats() { sort -g | awk '{ v[NR] = $1 } END { printf "p50 %s  p90 %s  max %s (n=%d)", v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.999)], v[NR], NR }'; }

make_tiny_image

# berth, with its history.
mkdir -p "$T/berth"
# The crash-loop limit (5 restarts in 10 s) would mark a service failed after its sixth kill
# here: this measures restarts, not that policy.
printf '[runtime]\ncgroup_parent = "berth-bench"\n[supervisor]\nmax_restarts = 1000\n' > "$T/berth/berth.toml"
start_berthd() {
    "$BIN/berthd" --root "$T/berth/root" --state "$T/berth/state" --config "$T/berth/berth.toml" 2>>"$T/berthd.log" &
    BERTHD=$!
}
start_berthd
wait_sock "$T/berth/state/runtime.sock"
"$BIN/restart_bench" wait-health "$T/berth/state"
berth() { "$BIN/berth" --state "$T/berth/state" "$@"; }
berth images import "$T/tiny.tar" > /dev/null
IMG=$(berth images ls -q | head -1)
for i in $(seq 1 "$TAGS"); do berth images tag "$IMG" "docker.io/library/tag$i:latest" > /dev/null; done
for i in 1 2 3 4 5; do berth run -d "$IMG" "k$i" sleep 100000 > /dev/null; done

echo "== berth: each service SIGKILLed $ROUNDS times, restarted by berthd (kill -> answering, ms)"
"$BIN/restart_bench" services "$T/berth/state" "$ROUNDS"

echo "== berth: berthd SIGKILLed $ROUNDS times, started again (kill -> every service answers, ms)"
for _ in $(seq 1 "$ROUNDS"); do
    sleep 1
    a=$(now); kill -9 "$BERTHD"; wait "$BERTHD" 2>/dev/null || true
    start_berthd; "$BIN/restart_bench" wait-health "$T/berth/state"; b=$(now)
    echo "$(ms "$a" "$b")" >> "$T/berthd-times"
done
echo "  every service answers: $(stats < "$T/berthd-times")"
running=$(berth tasks ls | grep -c running || true)
echo "berth containers still running: $running of 5"
[ "$running" = 5 ] || { echo "a berth container did not survive" >&2; exit 1; }

[ $HAVE_CTR = 1 ] || { echo "containerd missing: no comparison"; exit 0; }

start_containerd
CTD=${PIDS[-1]}
unset 'PIDS[-1]'
ctr images import "$T/tiny.tar" > /dev/null
for i in $(seq 1 "$TAGS"); do ctr images tag docker.io/library/tiny:latest "docker.io/library/tag$i:latest" > /dev/null; done
for i in 1 2 3 4 5; do ctr run -d docker.io/library/tiny:latest "restart-k$i" sleep 100000; done

echo "== containerd: SIGKILLed $ROUNDS times, started again (ms)"
for _ in $(seq 1 "$ROUNDS"); do
    sleep 1
    a=$(now); kill -9 "$CTD"; wait "$CTD" 2>/dev/null || true
    containerd --config "$T/ctd/config.toml" >>"$T/ctd.log" 2>&1 &
    CTD=$!
    "$BIN/restart_bench" wait-connect "$T/ctd/containerd.sock"; b=$(now)
    until ctr version > /dev/null 2>&1; do sleep 0.001; done; c=$(now)
    echo "$(ms "$a" "$b") $(ms "$a" "$c")" >> "$T/ctd-times"
done
echo "  socket accepts:      $(cut -d' ' -f1 "$T/ctd-times" | stats)"
echo "  ctr version answers: $(cut -d' ' -f2 "$T/ctd-times" | stats)"
a=$(now); ctr version > /dev/null; b=$(now)
echo "  (ctr version alone against a running containerd: $(ms "$a" "$b") ms)"
running=$(ctr tasks ls | grep -c RUNNING || true)
echo "containerd containers still running: $running of 5"
