#!/usr/bin/env bash
# CRI pod lifecycle latencies and memory per pod: berth-cri vs containerd's CRI, same run.
#
#   cargo build --release --workspace --bins
#   bash bench/cri.sh [RUNS] [PODS]
#
# A private docker-registry on 127.0.0.1 serves two images built here: busybox (the
# workload, `sleep 1000`) and a static pause binary (containerd's sandbox image; berth needs
# none). berthd and containerd (CRI on, runc, overlayfs) each get their own root, state and
# socket. containerd 1.6 runs no pod without a CNI network that gives it an address, so it
# gets a bridge network of its own (no gateway, no NAT); berth's pods are loopback-only until
# berth runs CNI itself, so RunPodSandbox's figure includes containerd's bridge plugin.
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
[ -x /usr/lib/cni/loopback ] || { echo "missing /usr/lib/cni/loopback (containernetworking-plugins)" >&2; exit 1; }

T=$(mktemp -d /var/tmp/berth-bench-cri.XXXXXX)
PIDS=()
BRIDGE=berthbench0
FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
cleanup() {
    set +e +o pipefail
    kill_berth_containers
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 1
    pkill -9 -f "$T/ctd" 2>/dev/null
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    ip link del "$BRIDGE" 2>/dev/null
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

# berth.
mkdir -p "$T/berth"
cat > "$T/berth/config.toml" <<EOC
root = "$T/berth/root"
state = "$T/berth/state"
[runtime]
cgroup_parent = "/berth-bench"
EOC
"$BIN/berthd" --config "$T/berth/config.toml" >"$T/berthd.log" 2>&1 &
PIDS+=($!)
wait_sock "$T/berth/state/cri.sock"

# containerd with its CRI.
mkdir -p "$T/ctd/net.d" "$T/ctd/certs.d/$REG"
# containerd 1.6 runs no pod without an eth0 with an address: a bridge of our own with
# host-local addresses from a subnet nothing else here uses, no gateway, no masquerade (so
# no iptables rule and no ip_forward change); removed at the end. No traffic is sent.
cat > "$T/ctd/net.d/10-bench.conflist" <<EOC
{ "cniVersion": "1.0.0", "name": "berthbench", "plugins": [
  { "type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false,
    "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.213.7.0/24" }]], "dataDir": "$T/ctd/ipam" } } ] }
EOC
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
