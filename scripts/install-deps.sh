#!/usr/bin/env bash
# Installs the system packages berth's tests and quick start use. Idempotent: packages
# already present are not fetched again. Needs root (apt-get).
set -euo pipefail

packages=(runc crun docker-registry skopeo umoci busybox-static containerd protobuf-compiler containernetworking-plugins)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The registry and containerd are started by the tests and benchmarks themselves, on their
# own ports, sockets and roots; the packaged system services must not hold the defaults.
for unit in docker-registry containerd; do
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
done
command -v cargo >/dev/null || { echo "cargo is missing: install a Rust toolchain" >&2; exit 1; }
