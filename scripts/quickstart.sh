#!/usr/bin/env bash
# berth's quick start: installs the system packages, builds berth in release mode, starts
# berthd on a private root under /tmp (never /var/lib/berth), shows the supervised services,
# and stops everything again. Offline: nothing is downloaded but Debian packages and crates.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --workspace --bins --quiet
bin=$PWD/target/release
base=$(mktemp -d /tmp/berth-quickstart.XXXXXX)
export BERTH_STATE=$base/state

"$bin/berthd" --root "$base/root" --state "$BERTH_STATE" 2>"$base/berthd.log" &
berthd=$!
trap 'kill -TERM $berthd 2>/dev/null; wait $berthd 2>/dev/null; rm -rf "$base"' EXIT

# Wait for the control socket and every service to be up.
for _ in $(seq 100); do
    "$bin/berth" --timeout 1 services ls >/dev/null 2>&1 && break
    sleep 0.05
done
echo "\$ berth version"
"$bin/berth" version
echo
echo "\$ berth services ls"
"$bin/berth" services ls
echo
victim=$("$bin/berth" services ls | awk '$1 == "content" { print $2 }')
echo "\$ kill -9 <content's pid $victim>; berth content service answers again:"
kill -9 "$victim"
"$bin/berth" version | grep -E '^(NAME|content)'
"$bin/berth" services ls | grep -E '^(NAME|content)'
