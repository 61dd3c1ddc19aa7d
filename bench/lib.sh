# Shared by the bench scripts (sourced): a private containerd for side-by-side runs.

# Starts containerd with its own root, state, sockets and opt dir under "$T/ctd" (CRI off,
# no metrics listener), adds its pid to PIDS, waits for its socket (the caller's
# `wait_sock`), and defines `ctr` talking to it in namespace `bench`.
start_containerd() {
    mkdir -p "$T/ctd"
    cat > "$T/ctd/config.toml" <<EOC
version = 2
root = "$T/ctd/root"
state = "$T/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$T/ctd/containerd.sock"
[ttrpc]
  address = "$T/ctd/containerd.sock.ttrpc"
[debug]
  address = "$T/ctd/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/ctd/opt"
EOC
    containerd --config "$T/ctd/config.toml" >"$T/ctd.log" 2>&1 &
    PIDS+=($!)
    wait_sock "$T/ctd/containerd.sock"
    ctr() { command ctr --address "$T/ctd/containerd.sock" -n bench "$@"; }
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
wait_sock() { for _ in $(seq 1 400); do [ -S "$1" ] && return 0; sleep 0.05; done; echo "no socket $1" >&2; exit 1; }

# A 2 MB busybox image as an OCI layout tar, "$T/tiny.tar", named
# docker.io/library/tiny:latest (commands: sh true echo sleep).
make_tiny_image() {
    mkdir -p "$T/rootfs/bin" "$T/rootfs/etc" "$T/rootfs/proc" "$T/rootfs/sys" "$T/rootfs/dev" "$T/rootfs/tmp" "$T/oci/blobs/sha256"
    cp /bin/busybox "$T/rootfs/bin/busybox"
    for a in sh true echo sleep; do ln -s busybox "$T/rootfs/bin/$a"; done
    echo 'root:x:0:0:root:/root:/bin/sh' > "$T/rootfs/etc/passwd"
    tar -C "$T/rootfs" --numeric-owner -cf "$T/layer.tar" .
    blob() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$T/oci/blobs/sha256/$d"; echo "$d"; }
    local L LS C CS M MS
    L=$(blob "$T/layer.tar"); LS=$(stat -c %s "$T/layer.tar")
    printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$L" > "$T/config.json"
    C=$(blob "$T/config.json"); CS=$(stat -c %s "$T/config.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' "$C" "$CS" "$L" "$LS" > "$T/manifest.json"
    M=$(blob "$T/manifest.json"); MS=$(stat -c %s "$T/manifest.json")
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"docker.io/library/tiny:latest","org.opencontainers.image.ref.name":"latest"}}]}' "$M" "$MS" > "$T/oci/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' > "$T/oci/oci-layout"
    tar -C "$T/oci" -cf "$T/tiny.tar" .
}

# Cleanup steps shared by the scripts' EXIT traps (best effort: run them under `set +e`).
# Every container process and shim of the berth under "$T/berth/state".
kill_berth_containers() {
    [ -d "$T/berth/state/tasks" ] || return 0
    for p in "$T"/berth/state/tasks/*/*/init.pid; do [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null; done
    pkill -9 -f "$T/berth/state" 2>/dev/null
    return 0
}

# What is mounted under "$T", the (empty) cgroups runc leaves (berth's parent berth-bench,
# containerd's namespace bench; retried while the last deletes finish), then "$T" itself.
remove_leftovers() {
    awk '{ print $5 }' /proc/self/mountinfo | grep "^$T" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    for _ in $(seq 1 20); do
        find /sys/fs/cgroup/*/berth-bench /sys/fs/cgroup/*/bench -depth -type d -exec rmdir {} + 2>/dev/null || true
        compgen -G "/sys/fs/cgroup/*/berth-bench" >/dev/null || compgen -G "/sys/fs/cgroup/*/bench" >/dev/null || break
        sleep 0.5
    done
    rm -rf "$T"
}
