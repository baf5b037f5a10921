#!/usr/bin/env bash
# Fuzzes the Rust core with libFuzzer (`cargo fuzz`) for a bounded time per target, merges the
# new inputs into the committed corpus (fuzz/corpus/<target>/) and prints executions, time and
# crashes per target. Not run by CI; see docs/fuzzing.md.
#
#   scripts/fuzz.sh [seconds per target, default 60] [target ...]
#
# Environment: ML4T_FUZZ_STRICT=1 (or a comma-separated list of invariant names) also asserts
# the invariants known to fail today (fuzz/src/lib.rs); FUZZ_SANITIZER=none builds without
# AddressSanitizer (the default, address, works on stable with RUSTC_BOOTSTRAP=1).
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(feed_views order_sequences)
fi
sanitizer="${FUZZ_SANITIZER:-address}"
# cargo fuzz passes nightly-only flags (-Z); the stable toolchain accepts them with this.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

cargo fuzz build -O --sanitizer "$sanitizer" 2>&1 | tail -n 3
summary=()
for target in "${targets[@]}"; do
    corpus="corpus/$target"
    fresh="$(mktemp -d)"
    log="$(mktemp)"
    mkdir -p "$corpus" "artifacts/$target"
    echo "== $target: ${seconds}s"
    start=$(date +%s)
    # New inputs go to a scratch directory; the committed corpus is only read.
    set +e
    cargo fuzz run -O --sanitizer "$sanitizer" "$target" "$fresh" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    elapsed=$(( $(date +%s) - start ))
    grep -E "^#[0-9]+.*(DONE|pulse|NEW)" "$log" | tail -n 1 || true
    grep -E "panicked at|invariant .* violated|SUMMARY|Test unit written" "$log" | head -n 5 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -oE "cov: [0-9]+ ft: [0-9]+" "$log" | tail -n 1 || true)
    crashes=$(find "artifacts/$target" -newer "$log" \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
    # Keep only inputs that add coverage: merge the scratch directory into the corpus.
    cargo fuzz run -O --sanitizer "$sanitizer" "$target" "$corpus" "$fresh" -- -merge=1 \
        >"$log.merge" 2>&1 || true
    added=$(grep -oE "[0-9]+ new files" "$log.merge" | tail -n 1 || true)
    summary+=("$target: ${execs:-?} executions in ${elapsed}s, ${cov:-cov ?}, exit $status, crashes $crashes, corpus +${added:-0 new files} ($(ls "$corpus" | wc -l) files, $(du -sh "$corpus" | cut -f1))")
    rm -rf "$fresh" "$log" "$log.merge"
done
echo "== summary"
printf '%s\n' "${summary[@]}"
