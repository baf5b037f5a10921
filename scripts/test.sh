#!/usr/bin/env bash
# The whole test suite: set up, lint, Rust tests of the core, pytest, and the benchmarks in
# quick mode (they only prove the harness runs; figures come from scripts/bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
echo "== rustfmt + clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== ruff + mypy"
.venv/bin/ruff check python tests benches examples
.venv/bin/ruff format --check python tests benches examples
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
echo "== stubtest (the hand-written _core.pyi against the built extension)"
.venv/bin/python -m mypy.stubtest ml4t.backtest._core
echo "== cargo test (core)"
cargo test -p ml4t-backtest-core
echo "== Rust benchmark harness (quick)"
cargo run --release --quiet -p ml4t-backtest-benches --bin bench_report -- --quick
echo "== Chromium (the report test opens the HTML report in headless Chromium)"
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq chromium \
            || echo "could not install chromium: the browser tests of the report will be skipped"
    else
        echo "chromium is not installed and this is not root: the browser tests of the report" \
            "will be skipped (install the Debian package 'chromium' to run them)"
    fi
fi
echo "== pytest"
.venv/bin/pytest tests benches --benchmark-disable -p no:cacheprovider
