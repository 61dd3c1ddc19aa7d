#!/usr/bin/env bash
# The fault campaign (tests/tests/fault_campaign.rs) for as long as asked: a mixed workload
# against one berthd while a random berth process is SIGKILLed every 0.3-2 s.
#
#   bash bench/soak.sh [DURATION] [ROUNDS]
#
# DURATION is the chaos time of one round: seconds, or with a unit (90s, 20m, 3h); 20m by
# default. ROUNDS (default 1) repeats the campaign, each round on a fresh berth with a new
# seed, until one fails. Each round's report (kills per process kind, operations, failures,
# restart latency p50/p99 per service) is printed and kept in $SOAK_LOG (default
# /var/tmp/berth-soak-<date>.log). BERTH_CAMPAIGN_SEED replays one round's choices.
# Uses CARGO_TARGET_DIR if set; builds the binaries and the test first, in the debug profile
# unless SOAK_PROFILE=release (restart latencies as a production build has them).
set -euo pipefail

DUR=${1:-20m}
ROUNDS=${2:-1}
case "$DUR" in
    *h) SECS=$(( ${DUR%h} * 3600 )) ;;
    *m) SECS=$(( ${DUR%m} * 60 )) ;;
    *s) SECS=${DUR%s} ;;
    *) SECS=$DUR ;;
esac
LOG=${SOAK_LOG:-/var/tmp/berth-soak-$(date +%Y%m%d-%H%M%S).log}
cd "$(dirname "$0")/.."

PROFILE=()
[ "${SOAK_PROFILE:-debug}" = release ] && PROFILE=(--release)
cargo build "${PROFILE[@]}" --workspace --bins
cargo test "${PROFILE[@]}" -p berth-system-tests --test fault_campaign --no-run

echo "soak: $ROUNDS round(s) of $SECS s of chaos, ${SOAK_PROFILE:-debug} build; log: $LOG" | tee -a "$LOG"
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round/$ROUNDS, $(date -u +%FT%TZ)" | tee -a "$LOG"
    start=$(date +%s)
    if ! BERTH_CAMPAIGN_SECS=$SECS cargo test "${PROFILE[@]}" -p berth-system-tests --test fault_campaign \
        -- --nocapture --test-threads 1 2>&1 | tee -a "$LOG"; then
        echo "soak: round $round FAILED after $(( $(date +%s) - start )) s; see $LOG" | tee -a "$LOG"
        exit 1
    fi
    echo "soak: round $round passed in $(( $(date +%s) - start )) s" | tee -a "$LOG"
done
echo "soak: all $ROUNDS round(s) passed" | tee -a "$LOG"
