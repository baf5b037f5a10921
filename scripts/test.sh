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
echo "== cargo test (core)"
cargo test -p ml4t-backtest-core
echo "== Rust benchmark harness (quick)"
cargo run --release --quiet -p ml4t-backtest-benches --bin bench_report -- --quick
echo "== pytest"
.venv/bin/pytest tests benches --benchmark-disable -p no:cacheprovider
