#!/usr/bin/env bash
# Creates .venv (if missing) and installs ml4t-backtest in editable mode with its dev extras.
# The Rust extension is built in release mode by maturin. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
stamp=.venv/.ml4t-installed
# Reinstall when the Rust or packaging sources changed since the last install.
if [ ! -f "$stamp" ] || [ -n "$(find rust python pyproject.toml Cargo.toml Cargo.lock -newer "$stamp" \
        \( -name '*.rs' -o -name '*.toml' -o -name '*.lock' -o -name '*.pyi' \) -print -quit)" ]; then
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    touch "$stamp"
fi
