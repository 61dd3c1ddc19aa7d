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
