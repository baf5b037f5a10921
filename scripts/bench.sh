#!/usr/bin/env bash
# Full benchmarks: Rust core scenarios (bars/s, peak heap) and the Python end-to-end scenarios
# (bars/s, peak RSS). Figures are the ones quoted in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
cargo run --release --quiet -p ml4t-backtest-benches --bin bench_report
.venv/bin/python benches/python_bench_report.py "$@"
