#!/usr/bin/env bash
# The main job: set up, then run the integrated example backtest on generated data.
# Results (Parquet records, metrics.json, summary.txt) go to output/example/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/python examples/ml_topk_backtest.py --output output/example "$@"
