#!/usr/bin/env bash
# berth's quick start: installs the system packages, builds berth in release mode, starts
# berthd on a private root under /tmp (never /var/lib/berth), builds a busybox image offline,
# imports it, runs a container from it, shows the supervisor surviving a SIGKILL, and stops
# everything again. Offline: nothing is downloaded but Debian packages and crates.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --workspace --bins --quiet
bin=$PWD/target/release
base=$(mktemp -d /tmp/berth-quickstart.XXXXXX)
export BERTH_STATE=$base/state
berth() { "$bin/berth" "$@"; }
show() { echo; printf '$ berth'; printf ' %q' "$@"; echo; berth "$@"; }

# Containers' cgroups go under /berth-quickstart (removed at the end).
printf '[runtime]\ncgroup_parent = "berth-quickstart"\n' > "$base/berth.toml"
"$bin/berthd" --root "$base/root" --state "$BERTH_STATE" --config "$base/berth.toml" 2>"$base/berthd.log" &
berthd=$!
cleanup() {
    kill -TERM $berthd 2>/dev/null
    wait $berthd 2>/dev/null
    find /sys/fs/cgroup/*/berth-quickstart -depth -type d -exec rmdir {} + 2>/dev/null
    rm -rf "$base"
}
trap cleanup EXIT
for _ in $(seq 200); do
    berth --timeout 1 services ls >/dev/null 2>&1 && break
    sleep 0.05
done
show services ls

# A one-binary userland: Debian's busybox-static, with a few applet links.
rootfs=$base/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in sh echo cat ls hostname uname id ps sleep true false; do
    ln -s busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"
tar -C "$rootfs" -cf "$base/busybox.tar" .

show images import --rootfs "$base/busybox.tar" busybox
show images ls
show run --rm busybox hello sh -c 'echo "hello from $(hostname) as $(id -un), I am pid $$"; exit 3' || echo "(exit code $?)"

victim=$(berth services ls | awk '$1 == "content" { print $2 }')
echo
echo "\$ kill -9 $victim   # the content service; berthd replaces it, clients wait and retry"
kill -9 "$victim"
show images check busybox || true
show services ls
