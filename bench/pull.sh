#!/usr/bin/env bash
# Pull + unpack from a local registry, berth vs containerd, alternating, same registry.
#
#   cargo build --release --workspace --bins
#   bash bench/pull.sh [RUNS]
#
# The image: three layers made from this host's files — /usr/bin (base), /usr/share/locale
# (a second layer of many small files), and a layer of whiteouts deleting part of the first
# (gzip, like a registry image). It is imported into a private berth, pushed to a
# `docker-registry` on 127.0.0.1, then pulled cold, alternately, by
#   berth images pull HOST/bench/img:v1          (parallel downloads, each layer unpacked while it downloads)
#   ctr images pull --plain-http HOST/bench/img:v1 (containerd's default: fetch, then unpack)
# removing the image, its blobs and its snapshots between runs. Then
#   berth images import FILE  vs  ctr images import FILE  of the same OCI archive.
# Everything lives in a temp dir (own roots, states, sockets) removed at the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUNS=${1:-3}
BIN=${BERTH_BIN:-${CARGO_TARGET_DIR:-target}/release}
for b in berth berthd berth-content berth-metadata berth-snapshot berth-events berth-runtime; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cargo build --release --workspace --bins" >&2; exit 1; }
done
command -v docker-registry >/dev/null || { echo "docker-registry is not installed" >&2; exit 1; }
HAVE_CTR=1
command -v containerd >/dev/null && command -v ctr >/dev/null || HAVE_CTR=0

T=$(mktemp -d /var/tmp/berth-bench-pull.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    umount -R "$T/ctd/root" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- the image, as an OCI layout tar -------------------------------------------------------
L=$T/layout; mkdir -p "$L/blobs/sha256" "$T/l1/usr" "$T/l2/usr/share" "$T/l3/usr/bin"
cp -a /usr/bin "$T/l1/usr/"
cp -a /usr/share/locale "$T/l2/usr/share/"
for f in $(ls /usr/bin | head -200); do : > "$T/l3/usr/bin/.wh.$f"; done
layers=""; diffs=""
for i in 1 2 3; do
    tar -C "$T/l$i" --numeric-owner -cf "$T/l$i.tar" .
    d=$(sha "$T/l$i.tar")
    gzip -n -1 -c "$T/l$i.tar" > "$T/l$i.tgz"
    g=$(sha "$T/l$i.tgz"); s=$(stat -c %s "$T/l$i.tgz")
    mv "$T/l$i.tgz" "$L/blobs/sha256/$g"; rm "$T/l$i.tar"
    layers="$layers${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$g\",\"size\":$s}"
    diffs="$diffs${diffs:+,}\"sha256:$d\""
done
rm -rf "$T/l1" "$T/l2" "$T/l3"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffs" > "$T/config"
c=$(sha "$T/config"); cs=$(stat -c %s "$T/config"); mv "$T/config" "$L/blobs/sha256/$c"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' "$c" "$cs" "$layers" > "$T/manifest"
m=$(sha "$T/manifest"); ms=$(stat -c %s "$T/manifest"); mv "$T/manifest" "$L/blobs/sha256/$m"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REF=127.0.0.1:$PORT/bench/img:v1
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"v1"}}]}' "$m" "$ms" "$REF" > "$L/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$L/oci-layout"
tar -C "$L" -cf "$T/image.tar" .
SIZE=$(du -sm "$L/blobs" | cut -f1)

# --- registry, berth, containerd -----------------------------------------------------------
cat > "$T/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $T/registry
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$T/registry.yml" >"$T/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done

: > "$T/berth.toml"
"$BIN/berthd" --root "$T/berth/root" --state "$T/berth/state" --config "$T/berth.toml" >"$T/berthd.log" 2>&1 &
PIDS+=($!)
wait_sock "$T/berth/state/metadata.sock"; wait_sock "$T/berth/state/snapshot.sock"; sleep 1
berth() { "$BIN/berth" --state "$T/berth/state" "$@"; }
berth images import "$T/image.tar" >/dev/null
berth images push -q "$REF" >/dev/null
berth images rm --sync "$REF" >/dev/null

if [ $HAVE_CTR = 1 ]; then
    start_containerd
fi

# Removes berth's image, blobs and snapshots (the metadata GC does not free snapshots yet).
berth_clean() {
    berth -n "$1" images rm --sync "$REF" >/dev/null 2>&1 || true
    for _ in 1 2 3 4; do
        for k in $(berth --format json snapshots ls | python3 -c 'import json,sys; [print(s["name"]) for s in json.load(sys.stdin)]'); do
            berth snapshots rm "$k" >/dev/null 2>&1 || true
        done
    done
    berth gc >/dev/null
}

# Before each timed run: everything written so far goes to disk, and the page cache is
# dropped (COLD=0 skips the drop). Without it, the inodes the previous run just deleted sit
# in cached inode-table blocks, and on ext4 without a journal (this VM's root) every inode
# allocation of the next run scans past each inode deleted in the last 60 s
# (find_inode_bit -> recently_deleted): the next pull's time then depends mostly on how many
# files the run before it removed. docs/benchmarks.md has the figures both ways.
COLD=${COLD:-1}
sync() {
    command sync
    if [ "$COLD" = 1 ] && [ -w /proc/sys/vm/drop_caches ]; then echo 1 > /proc/sys/vm/drop_caches; fi
}

: > "$T/results"
for run in $(seq 1 "$RUNS"); do
    sync
    a=$(now); berth -n "pull$run" images pull -q "$REF" >/dev/null; b=$(now)
    echo "berth-pull $(elapsed "$a" "$b")" >> "$T/results"
    berth_clean "pull$run"
    if [ $HAVE_CTR = 1 ]; then
        sync
        a=$(now); ctr images pull --plain-http "$REF" >/dev/null; b=$(now)
        echo "containerd-pull $(elapsed "$a" "$b")" >> "$T/results"
        ctr images rm --sync "$REF" >/dev/null
    fi
    sync
    a=$(now); berth -n "imp$run" images import "$T/image.tar" >/dev/null; b=$(now)
    echo "berth-import $(elapsed "$a" "$b")" >> "$T/results"
    berth_clean "imp$run"
    if [ $HAVE_CTR = 1 ]; then
        sync
        a=$(now); ctr images import "$T/image.tar" >/dev/null; b=$(now)
        echo "containerd-import $(elapsed "$a" "$b")" >> "$T/results"
        ctr images rm --sync "$REF" >/dev/null
    fi
done

echo "# image: 3 gzip layers, ${SIZE} MiB compressed; $RUNS runs, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
sed 's/^/run /' "$T/results"
for who in berth-pull containerd-pull berth-import containerd-import; do
    grep -q "^$who " "$T/results" || continue
    echo "median $who $(grep "^$who " "$T/results" | cut -d' ' -f2 | median)s"
done
if [ $HAVE_CTR = 1 ]; then
    bp=$(grep "^berth-pull " "$T/results" | cut -d' ' -f2 | median)
    cp=$(grep "^containerd-pull " "$T/results" | cut -d' ' -f2 | median)
    echo "ratio berth/containerd pull+unpack $(awk -v a="$bp" -v b="$cp" 'BEGIN { printf "%.2f", a / b }')"
fi
