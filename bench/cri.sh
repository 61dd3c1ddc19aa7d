#!/usr/bin/env bash
# CRI pod lifecycle latencies and memory per pod: berth-cri vs containerd's CRI, same run.
#
#   cargo build --release --workspace --bins
#   bash bench/cri.sh [RUNS] [PODS]
#
# A private docker-registry on 127.0.0.1 serves two images built here: busybox (the
# workload, `sleep 1000`) and a static pause binary (containerd's sandbox image; berth needs
# none). berthd and containerd (CRI on, runc, overlayfs) each get their own root, state and
# socket. Both get the same CNI network, each its own copy: a bridge with host-local addresses
# (no gateway, no NAT, so no iptables rule and no ip_forward change), containerd's on bridge
# berthbench0 / 10.213.7.0/24, berth's on berthbench1 / 10.213.8.0/24, the address records in
# the temp dir. RunPodSandbox and StopPodSandbox include the plugins' ADD and DEL in both, and
# cri_bench checks every pod got an address (PodSandboxStatus).
# `cri_bench` then times every lifecycle step against both, alternating round by round, and
# measures the PSS each running pod adds (berth: shims and services under its temp dir;
# containerd: containerd, its shims and the pause processes). Everything lives in a temp dir,
# removed at the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUNS=${1:-10}
PODS=${2:-10}
BIN=${BERTH_BIN:-${CARGO_TARGET_DIR:-target}/release}
for b in berthd berth-cri berth-runtime berth-shim berth-sandbox cri_bench; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: cargo build --release --workspace --bins" >&2; exit 1; }
done
for tool in docker-registry umoci skopeo gcc containerd; do
    command -v $tool >/dev/null || { echo "missing $tool (scripts/install-deps.sh)" >&2; exit 1; }
done
for p in loopback bridge host-local; do
    [ -x /usr/lib/cni/$p ] || { echo "missing /usr/lib/cni/$p (containernetworking-plugins)" >&2; exit 1; }
done

T=$(mktemp -d /var/tmp/berth-bench-cri.XXXXXX)
PIDS=()
BRIDGE=berthbench0
BERTH_BRIDGE=berthbench1
FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
cleanup() {
    set +e +o pipefail
    kill_berth_containers
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 1
    pkill -9 -f "$T/ctd" 2>/dev/null
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    ip link del "$BRIDGE" 2>/dev/null
    ip link del "$BERTH_BRIDGE" 2>/dev/null
    # The networks add no rule (no NAT, no port mapping); say so if one appeared.
    if command -v iptables-save >/dev/null && iptables-save 2>/dev/null | grep -qE '10\.213\.[78]\.'; then
        echo "warning: iptables rules for the bench subnets are left: iptables-save | grep 10.213." >&2
    fi
    [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$FORWARD" ] || echo "$FORWARD" > /proc/sys/net/ipv4/ip_forward
    remove_leftovers
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
mkdir -p "$T/registry"
cat > "$T/registry/config.yml" <<EOC
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $T/registry/data } }
http: { addr: $REG }
EOC
docker-registry serve "$T/registry/config.yml" >"$T/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

# The images: busybox (sh, sleep) and a static pause.
printf '#include <unistd.h>\nint main(void) { for (;;) pause(); }\n' > "$T/pause.c"
gcc -static -O2 -o "$T/bench-pause" "$T/pause.c"
umoci init --layout "$T/oci" >/dev/null
image() { # name, then a function filling the rootfs dir given as $1
    local name=$1 fill=$2
    umoci new --image "$T/oci:$name" >/dev/null
    umoci unpack --rootless --image "$T/oci:$name" "$T/b-$name" >/dev/null 2>&1 || umoci unpack --image "$T/oci:$name" "$T/b-$name" >/dev/null
    $fill "$T/b-$name/rootfs"
    umoci repack --image "$T/oci:$name" "$T/b-$name" >/dev/null
    rm -rf "$T/b-$name"
}
fill_busybox() { mkdir -p "$1/bin" "$1/etc" "$1/tmp"; cp /bin/busybox "$1/bin/busybox"; for a in sh sleep true; do ln -s busybox "$1/bin/$a"; done; echo 'root:x:0:0:root:/root:/bin/sh' > "$1/etc/passwd"; }
fill_pause() { cp "$T/bench-pause" "$1/bench-pause"; }
image busybox fill_busybox
image pause fill_pause
umoci config --image "$T/oci:pause" --config.entrypoint /bench-pause >/dev/null
for i in busybox pause; do
    skopeo copy --quiet --dest-tls-verify=false "oci:$T/oci:$i" "docker://$REG/bench/$i:1"
done

# The bench's network for runtime $1, conf dir $2, bridge $3, subnet $4.
bench_network() {
    mkdir -p "$2"
    cat > "$2/10-bench.conflist" <<EOC
{ "cniVersion": "1.0.0", "name": "berthbench", "plugins": [
  { "type": "bridge", "bridge": "$3", "isGateway": false, "ipMasq": false,
    "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$4" }]], "dataDir": "$T/$1/ipam" } } ] }
EOC
}

# berth: the bench network as its default, never its own default list.
mkdir -p "$T/berth"
bench_network berth "$T/berth/net.d" "$BERTH_BRIDGE" 10.213.8.0/24
cat > "$T/berth/config.toml" <<EOC
root = "$T/berth/root"
state = "$T/berth/state"
[runtime]
cgroup_parent = "/berth-bench"
[network]
conf_dir = "$T/berth/net.d"
plugin_dirs = ["/usr/lib/cni"]
default_network = "berthbench"
write_default = false
EOC
"$BIN/berthd" --config "$T/berth/config.toml" >"$T/berthd.log" 2>&1 &
PIDS+=($!)
wait_sock "$T/berth/state/cri.sock"

# containerd with its CRI.
mkdir -p "$T/ctd/certs.d/$REG"
# containerd 1.6 runs no pod without an eth0 with an address. Subnets nothing else here
# uses; the bridges are removed at the end. No traffic is sent.
bench_network ctd "$T/ctd/net.d" "$BRIDGE" 10.213.7.0/24
cat > "$T/ctd/certs.d/$REG/hosts.toml" <<EOC
server = "http://$REG"
[host."http://$REG"]
  capabilities = ["pull", "resolve"]
EOC
cat > "$T/ctd/config.toml" <<EOC
version = 2
root = "$T/ctd/root"
state = "$T/ctd/state"
[grpc]
  address = "$T/ctd/containerd.sock"
[ttrpc]
  address = "$T/ctd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/ctd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REG/bench/pause:1"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$T/ctd/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$T/ctd/certs.d"
EOC
containerd --config "$T/ctd/config.toml" >"$T/ctd.log" 2>&1 &
PIDS+=($!)
wait_sock "$T/ctd/containerd.sock"

# Both pull the workload image first (and containerd its pause image) through CRI.
IMG=$REG/bench/busybox:1
"$BIN/cri_bench" --pull "$IMG" "berth=$T/berth/state/cri.sock" "containerd=$T/ctd/containerd.sock"
"$BIN/cri_bench" --image "$IMG" --runs "$RUNS" --pods "$PODS" \
    "berth=$T/berth/state/cri.sock=$T/berth" \
    "containerd=$T/ctd/containerd.sock=$T/ctd,/bench-pause"
