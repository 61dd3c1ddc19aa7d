#!/usr/bin/env bash
# Run-to-exit, shim memory and concurrent starts: berth vs containerd, in the same run.
#
#   cargo build --release --workspace --bins
#   bash bench/runtime.sh [RUNS]
#
# One 2 MB busybox image (an OCI layout tar built here from /bin/busybox) is imported into
# both. Then:
#   berth run --rm tiny ID /bin/true            (runc, then --runtime crun)
#   ctr run --rm docker.io/library/tiny:latest ID /bin/true   (containerd + runc v2 shim)
# wall time per run, medians; VmRSS of one berth-shim vs one containerd-shim-runc-v2 holding
# a `sleep`; and the time to start 50 containers concurrently with `berth run -d`.
# Everything lives in a private temp dir (own root, state, sockets), removed at the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUNS=${1:-30}
BIN=${BERTH_BIN:-${CARGO_TARGET_DIR:-target}/release}
for b in berth berthd berth-runtime berth-shim; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cargo build --release --workspace --bins" >&2; exit 1; }
done
HAVE_CTR=1
command -v containerd >/dev/null && command -v ctr >/dev/null || HAVE_CTR=0

T=$(mktemp -d /var/tmp/berth-bench-runtime.XXXXXX)
PIDS=()
cleanup() {
    # Best effort, every step: a failing one (grep finding no mount) must not skip the rest.
    set +e +o pipefail
    kill_berth_containers
    [ $HAVE_CTR = 1 ] && command ctr --address "$T/ctd/containerd.sock" -n bench tasks kill -s 9 ctd-rss 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    remove_leftovers
}
trap cleanup EXIT

now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
# VmRSS, then what of it is the process's own: anonymous memory and proportional set size.
mem() { echo "VmRSS $(rss "$1") kB (anonymous $(awk '/RssAnon/ { print $2 }' "/proc/$1/status") kB, Pss $(awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup") kB)"; }

make_tiny_image

# berth: berthd and every service in a private root.
mkdir -p "$T/berth"
printf '[runtime]\ncgroup_parent = "berth-bench"\n' > "$T/berth/berth.toml"
"$BIN/berthd" --root "$T/berth/root" --state "$T/berth/state" --config "$T/berth/berth.toml" 2>"$T/berthd.log" &
PIDS+=($!)
wait_sock "$T/berth/state/runtime.sock"
sleep 1
berth() { "$BIN/berth" --state "$T/berth/state" "$@"; }
berth images import "$T/tiny.tar" > /dev/null
IMG=$(berth images ls -q | head -1)

if [ $HAVE_CTR = 1 ]; then
    start_containerd
    ctr images import "$T/tiny.tar" > /dev/null
fi

# What a command leaves running in the background (containerd's GC removing the snapshot,
# berth's shim finishing `runc delete`) must not land in the next command's time: each timed
# run starts once that is over. SETTLE seconds (default 0.3; 0 for back-to-back runs).
SETTLE=${SETTLE:-0.3}
settle() { sleep "$SETTLE"; }

# Warm-up, then RUNS runs of each, interleaved.
berth run --rm "$IMG" warm /bin/true
[ $HAVE_CTR = 1 ] && ctr run --rm docker.io/library/tiny:latest warm /bin/true
for i in $(seq 1 "$RUNS"); do
    settle; a=$(now); berth run --rm "$IMG" "r$i" /bin/true; b=$(now); echo "berth-runc $(ms "$a" "$b")" >> "$T/results"
    settle; a=$(now); berth run --rm --runtime crun "$IMG" "c$i" /bin/true; b=$(now); echo "berth-crun $(ms "$a" "$b")" >> "$T/results"
    if [ $HAVE_CTR = 1 ]; then
        settle; a=$(now); ctr run --rm docker.io/library/tiny:latest "k$i" /bin/true; b=$(now); echo "ctr-runc $(ms "$a" "$b")" >> "$T/results"
    fi
done
echo "run --rm /bin/true, median of $RUNS (ms):"
for who in berth-runc berth-crun ctr-runc; do
    grep -q "^$who " "$T/results" && echo "  $who $(grep "^$who " "$T/results" | cut -d' ' -f2 | median)"
done

# Shim memory: one idle shim whose container holds `sleep` (measured once the start's
# events are sent, 2 s after `run -d` returned; same wait for containerd's shim).
berth run -d "$IMG" rss sleep 1000 > /dev/null
sleep 2
SHIM=$(cat "$T/berth/state/tasks/default/rss/shim.pid")
echo "berth-shim: $(mem "$SHIM")"
berth tasks ps rss > /dev/null
sleep 1
echo "berth-shim after a request and 1 s idle: $(mem "$SHIM")"
if [ $HAVE_CTR = 1 ]; then
    ctr run -d docker.io/library/tiny:latest ctd-rss sleep 1000
    sleep 2
    CSHIM=$(pgrep -f "containerd-shim-runc-v2 -namespace bench -id ctd-rss" | head -1)
    echo "containerd-shim-runc-v2: $(mem "$CSHIM")"
    ctr tasks kill -s 9 ctd-rss; sleep 0.3; ctr tasks rm ctd-rss > /dev/null; ctr containers rm ctd-rss
fi
berth tasks kill -s 9 rss; berth tasks wait rss || true; berth tasks delete rss > /dev/null; berth containers rm rss > /dev/null

# 50 containers started concurrently.
# (wait on these jobs only: a bare `wait` would also wait for berthd and containerd)
JOBS=()
a=$(now)
for i in $(seq 1 50); do berth run -d "$IMG" "p$i" sleep 1000 > /dev/null & JOBS+=($!); done
for j in "${JOBS[@]}"; do wait "$j"; done
b=$(now)
echo "50 concurrent berth run -d: $(ms "$a" "$b") ms, running: $(berth tasks ls | grep -c running)"
for i in $(seq 1 50); do berth tasks kill -s 9 "p$i"; done
for i in $(seq 1 50); do berth tasks wait "p$i" > /dev/null || true; berth tasks delete "p$i" > /dev/null; berth containers rm "p$i" > /dev/null; done
