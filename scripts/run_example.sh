#!/usr/bin/env bash
# The main job: set up, then run the integrated example backtest on generated data.
# Results (Parquet records, metrics.json, summary.txt) go to output/example/; then the same
# strategy as a study (monthly walk-forward refits, a small sweep, its DSR and PBO) writes
# output/study/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/python examples/ml_topk_backtest.py --output output/example "$@"
.venv/bin/python examples/ml_topk_study.py --output output/study "$@"
