#!/usr/bin/env bash
# Builds berth's libFuzzer targets (fuzz/, see docs/fuzzing.md) and runs each for a bounded
# time, starting from its committed seed corpus (fuzz/corpus/<target>). Fails if any target
# crashes, leaks, runs out of memory or hangs on an input; the input is kept under
# fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s, every target)
# Env:   FUZZ_TARGET_DIR  cargo target dir (default fuzz/target)
#        FUZZ_WORK        where each target's grown corpus is kept between runs (default fuzz/work)
#        FUZZ_JOBS        targets run side by side (default 1)
#        FUZZ_ARGS        extra libFuzzer flags, e.g. "-max_len=65536"
#        FUZZ_SANITIZER   address (default) or none: without AddressSanitizer the targets build
#                         in about half the time and run faster; berth's code is safe Rust, so
#                         ASan mostly guards the few unsafe blocks (CI's short pass uses none)
#
# Only a stable toolchain is needed: cargo-fuzz passes nightly-only flags (-Zsanitizer=address,
# -Cpasses=sancov-module, …), which stable rustc accepts under RUSTC_BOOTSTRAP=1, and the
# sanitizer runtimes ship with the stable rust-std.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
target_dir=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}
work=${FUZZ_WORK:-$PWD/fuzz/work}
jobs=${FUZZ_JOBS:-1}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked --quiet
fi

start=$(date +%s)
mkdir -p "$work"
if ! cargo fuzz build --sanitizer "${FUZZ_SANITIZER:-address}" --target-dir "$target_dir" >"$work/build.log" 2>&1; then
    grep -Ev '^\s+(Compiling|Downloaded|Downloading)' "$work/build.log" | tail -40
    echo "fuzz: build failed"
    exit 1
fi
bin_dir=$target_dir/x86_64-unknown-linux-gnu/release
built=$(date +%s)
echo "fuzz: built in $((built - start)) s"

if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi

# Runs one target; prints one summary line; the full libFuzzer log goes to $work/<t>.log.
run_one() {
    local t=$1 corpus=$work/corpus/$1 log=$work/$1.log
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    local rc=0
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    "$bin_dir/$t" "$corpus" "fuzz/corpus/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" ${FUZZ_ARGS:-} \
        >"$log" 2>&1 &
    local pid=$!
    wait "$pid" || rc=$?
    # layer_apply's jail (its layer roots are removed after every input; the jail stays).
    rm -rf "${TMPDIR:-/tmp}/berth-fuzz-apply-$pid"
    local execs cov
    execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    if [ "$rc" -eq 0 ]; then
        printf 'fuzz: %-18s ok     %6s s %10s execs  cov %s\n' "$t" "$secs" "${execs:-?}" "${cov:-?}"
    else
        printf 'fuzz: %-18s FAILED (exit %s), see %s and fuzz/artifacts/%s/\n' "$t" "$rc" "$log" "$t"
        grep -E '^(==[0-9]+==|thread .* panicked|SUMMARY|artifact_prefix)' "$log" | head -5 | sed 's/^/      /'
        return 1
    fi
}

failed=0
pids=()
for t in "${targets[@]}"; do
    run_one "$t" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$jobs" ]; then
        wait "${pids[0]}" || failed=$((failed + 1))
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
echo "fuzz: ${#targets[@]} targets, ${secs} s each, $failed failed, $(($(date +%s) - start)) s in all"
[ "$failed" -eq 0 ]
