#!/usr/bin/env bash
# Runs every berth test: installs what the tests need, builds all binaries (the system tests
# drive the real berthd and services), then runs the whole workspace's tests and prints the
# totals. Must run as root (mounts, namespaces, other uids).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --workspace --bins --quiet
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "\nberth tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
# Then every fuzz target for a few seconds from its seed corpus (docs/fuzzing.md); a crash fails.
fuzz_status=0
FUZZ_JOBS=${FUZZ_JOBS:-2} FUZZ_SANITIZER=${FUZZ_SANITIZER:-none} scripts/fuzz.sh "${BERTH_FUZZ_SECONDS:-10}" || fuzz_status=$?
[ "$status" -ne 0 ] && exit "$status"
exit "$fuzz_status"
