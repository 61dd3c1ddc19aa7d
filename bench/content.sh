#!/usr/bin/env bash
# Content ingest and read-back, berth vs containerd, in the same run.
#
#   cargo build --release -p berth-cli -p berth-content
#   bash bench/content.sh [SIZE_MIB] [RUNS]
#
# berth:      berth content ingest REF < FILE   (stdin -> content service -> committed blob;
#                                                the CLI passes stdin's fd, the service reads it)
#             berth content ingest --stream REF < FILE  (bytes sent through content.sock)
#             berth content get DIGEST > /dev/null   (the CLI gets the blob's fd, the kernel copies)
#             berth content get --stream DIGEST > /dev/null (bytes sent through content.sock)
# containerd: ctr content ingest REF < FILE     (same, through containerd's content store)
#             ctr content get DIGEST > /dev/null
# Both run from a private temp dir (own root, state and sockets; never the default paths)
# that is removed at the end. Each run starts after `sync` and deletes its blob afterwards,
# so every ingest pays for its own fsync. Prints one line per run and the medians.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SIZE_MIB=${1:-1024}
RUNS=${2:-3}
BIN=${BERTH_BIN:-${CARGO_TARGET_DIR:-target}/release}
for b in berth berth-content; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cargo build --release -p berth-cli -p berth-content" >&2; exit 1; }
done
HAVE_CTR=1
command -v containerd >/dev/null && command -v ctr >/dev/null || HAVE_CTR=0

T=$(mktemp -d /var/tmp/berth-bench-content.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT

now() { date +%s.%N; }
mibps() { awk -v s="$SIZE_MIB" -v t="$1" 'BEGIN { printf "%.0f", s / t }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

FILE=$T/data.bin
head -c $((SIZE_MIB << 20)) /dev/urandom > "$FILE"
DIGEST=sha256:$(sha256sum "$FILE" | cut -d' ' -f1)
cat "$FILE" > /dev/null

# berth: the content service alone, as berthd would start it.
"$BIN/berth-content" --root "$T/berth/root" --state "$T/berth/state" 2>"$T/berth.log" &
PIDS+=($!)
wait_sock "$T/berth/state/content.sock"
berth() { "$BIN/berth" --state "$T/berth/state" "$@"; }

# containerd: private root, state and sockets; CRI disabled.
if [ $HAVE_CTR = 1 ]; then
    start_containerd
fi

: > "$T/results"
for run in $(seq 1 "$RUNS"); do
    sync
    a=$(now); got=$(berth content ingest "bench-$run" < "$FILE"); b=$(now)
    [ "$got" = "$DIGEST" ] || { echo "berth stored $got, expected $DIGEST" >&2; exit 1; }
    c=$(now); berth content get "$DIGEST" > /dev/null; d=$(now)
    berth content rm "$DIGEST" > /dev/null
    echo "berth $(elapsed "$a" "$b") $(elapsed "$c" "$d")" >> "$T/results"
    sync
    a=$(now); got=$(berth content ingest --stream "bench-s-$run" < "$FILE"); b=$(now)
    [ "$got" = "$DIGEST" ] || { echo "berth --stream stored $got, expected $DIGEST" >&2; exit 1; }
    c=$(now); berth content get --stream "$DIGEST" > /dev/null; d=$(now)
    berth content rm "$DIGEST" > /dev/null
    echo "berth-stream $(elapsed "$a" "$b") $(elapsed "$c" "$d")" >> "$T/results"
    if [ $HAVE_CTR = 1 ]; then
        sync
        a=$(now); ctr content ingest "bench-$run" < "$FILE"; b=$(now)
        c=$(now); ctr content get "$DIGEST" > /dev/null; d=$(now)
        ctr content rm "$DIGEST" > /dev/null
        echo "containerd $(elapsed "$a" "$b") $(elapsed "$c" "$d")" >> "$T/results"
    fi
done

echo "# ${SIZE_MIB} MiB, $RUNS runs, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); seconds (MiB/s)"
while read -r who ing rd; do
    echo "run  $who ingest ${ing}s ($(mibps "$ing") MiB/s)  read ${rd}s ($(mibps "$rd") MiB/s)"
done < "$T/results"
for who in berth berth-stream containerd; do
    grep -q "^$who " "$T/results" || continue
    ing=$(grep "^$who " "$T/results" | cut -d' ' -f2 | median)
    rd=$(grep "^$who " "$T/results" | cut -d' ' -f3 | median)
    echo "median $who ingest ${ing}s ($(mibps "$ing") MiB/s)  read ${rd}s ($(mibps "$rd") MiB/s)"
done
if [ $HAVE_CTR = 0 ]; then echo "containerd/ctr not installed: berth only"; fi
