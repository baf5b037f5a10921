"""Regression tests for the file-facing trust findings: saved results are what was saved (r09),
the command line never prints a traceback for a user's mistake and escapes what it prints
(r11, r13), and a tiny YAML config cannot expand into unbounded work (r12)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from ml4t.backtest import Backtest, BacktestConfig, BacktestResult, PolarsDataFeed, TopKStrategy
from ml4t.backtest.cli import terminal_safe
from ml4t.backtest.config import MAX_YAML_VALUES, load_yaml
from ml4t.backtest.errors import BacktestError, ConfigError, ResultFileError
from ml4t.backtest.synthetic import make_bars


def _run(n_assets: int, n_bars: int) -> BacktestResult:
    feed = PolarsDataFeed(make_bars(n_assets=n_assets, n_bars=n_bars, seed=6))
    return Backtest(feed, TopKStrategy("score", k=2)).run(progress=False)


@pytest.fixture(scope="module")
def old() -> BacktestResult:
    return _run(5, 60)


@pytest.fixture(scope="module")
def new() -> BacktestResult:
    return _run(8, 120)


def _assert_same(loaded: BacktestResult, saved: BacktestResult) -> None:
    for name in ("fills", "trades", "equity", "rejected_orders", "records"):
        assert getattr(loaded, name).equals(getattr(saved, name)), name
    assert loaded.metrics.keys() == saved.metrics.keys()


# ------------------------------------------------------------------------- saved results (r09)


def test_a_changed_parquet_file_is_refused_by_name(tmp_path: Path, old: BacktestResult) -> None:
    old.save(tmp_path)
    equity = pl.read_parquet(tmp_path / "equity.parquet")
    equity.with_columns(pl.col("equity") * 1.5).write_parquet(tmp_path / "equity.parquet")
    with pytest.raises(ResultFileError, match=r"equity\.parquet: checksum_mismatch: "):
        BacktestResult.load(tmp_path)


def test_edited_metrics_are_refused(tmp_path: Path, old: BacktestResult) -> None:
    old.save(tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    metrics["sharpe"] = 99.0
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ResultFileError, match=r"metrics\.json: checksum_mismatch: "):
        BacktestResult.load(tmp_path)


def test_an_interrupted_save_leaves_the_previous_result(
    tmp_path: Path, old: BacktestResult, new: BacktestResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    old.save(tmp_path)
    (tmp_path / "report.html").write_text("<html></html>")
    original = pl.DataFrame.write_parquet
    calls = {"n": 0}

    def flaky(self: pl.DataFrame, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("Ctrl-C during save")
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl.DataFrame, "write_parquet", flaky)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path)
    monkeypatch.undo()
    _assert_same(BacktestResult.load(tmp_path), old)
    assert (tmp_path / "report.html").read_text() == "<html></html>"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".saving-")] == []
    new.save(tmp_path)  # a save over the old one replaces every file of it
    _assert_same(BacktestResult.load(tmp_path), new)
    assert (tmp_path / "report.html").exists()


def test_an_interrupted_rename_leaves_no_valid_manifest(
    tmp_path: Path, old: BacktestResult, new: BacktestResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    old.save(tmp_path)
    original = os.replace
    calls = {"n": 0}

    def flaky(src: str | Path, dst: str | Path) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        original(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path)
    monkeypatch.undo()
    with pytest.raises(ResultFileError, match=r"manifest\.json: missing: .*interrupted"):
        BacktestResult.load(tmp_path)


@pytest.mark.parametrize(
    ("damage", "pattern"),
    [
        (lambda d: (d / "manifest.json").unlink(), r"manifest\.json: missing: "),
        (lambda d: (d / "manifest.json").write_text("{not json"), r"manifest\.json: unreadable: "),
        (lambda d: (d / "manifest.json").write_text("[]"), r"manifest\.json: unknown_format: "),
        (lambda d: (d / "trades.parquet").unlink(), r"trades\.parquet: missing: "),
        (
            lambda d: (d / "fills.parquet").write_bytes((d / "fills.parquet").read_bytes()[:40]),
            r"fills\.parquet: checksum_mismatch: ",
        ),
        (lambda d: (d / "config.yaml").write_text("x: 1\n"), r"config\.yaml: checksum_mismatch: "),
    ],
)
def test_damaged_results_give_one_error_class(
    tmp_path: Path, old: BacktestResult, damage: object, pattern: str
) -> None:
    old.save(tmp_path)
    damage(tmp_path)  # type: ignore[operator]
    with pytest.raises(ResultFileError, match=pattern) as info:
        BacktestResult.load(tmp_path)
    assert isinstance(info.value, BacktestError)


def test_a_result_whose_manifest_was_rewritten_still_cannot_hide_a_truncation(
    tmp_path: Path, old: BacktestResult
) -> None:
    """Recomputing the checksum of a truncated file gets past the manifest check, but the
    file's own reader still fails with the library's error, not a raw Polars one."""
    old.save(tmp_path)
    path = tmp_path / "fills.parquet"
    path.write_bytes(path.read_bytes()[:40])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["files"]["fills.parquet"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultFileError, match=r"fills\.parquet: unreadable: "):
        BacktestResult.load(tmp_path)


def test_a_disk_error_is_an_oserror_naming_the_path(
    tmp_path: Path, old: BacktestResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: pl.DataFrame, path: Path, **kwargs: object) -> None:
        raise pl.exceptions.ComputeError("No space left on device (os error 28)")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    with pytest.raises(OSError, match=r"fills\.parquet: cannot write: .*No space left"):
        old.save(tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


# --------------------------------------------------------------------------- YAML bounds (r12)


def _alias_bomb(depth: int) -> str:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, depth):
        prev, cur = chr(97 + i - 1), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    body = "\n".join("      " + line for line in lines)
    return f"strategy:\n  name: my_pkg.mod:S\n  params:\n    junk:\n{body}\n"


def test_nested_aliases_past_the_limit_are_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(6))
    assert len(path.read_text()) < 400
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml>: yaml_too_large: .*100,000 values"):
        BacktestConfig.from_yaml(path)
    assert time.perf_counter() - start < 5  # counted, never expanded


def test_aliases_within_the_limit_still_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(_alias_bomb(3))  # 1,111 values
    config = BacktestConfig.from_yaml(path)
    assert config.strategy is not None
    assert len(config.strategy.params["junk"]["c"]) == 10
    assert MAX_YAML_VALUES == 100_000


def test_self_referring_yaml_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^cfg: yaml_recursive: "):
        load_yaml("a: &a [1, *a]\n", "cfg")
    with pytest.raises(ConfigError, match=r"^cfg: not valid YAML: "):
        load_yaml("a: [1, 2\n", "cfg")
    assert load_yaml("", "cfg") is None


# ------------------------------------------------------------------- command line (r11, r13)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ml4t.backtest.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("module", "params", "expected"),
    [
        (
            "raise RuntimeError('module fails at import')\n",
            "{}",
            r"^error: ConfigError: strategy\.name: import_failed: module 'user_mod' "
            r"\(.*user_mod\.py, line 1\) raised RuntimeError: module fails at import$",
        ),
        ("def broken(:\n", "{}", r"import_failed: .*user_mod\.py, line 1\) raised SyntaxError"),
        (
            textwrap.dedent("""
                from ml4t.backtest import Strategy
                class S(Strategy):
                    def __init__(self, k):
                        raise ValueError('bad k')
            """),
            "{k: 1}",
            r"^error: ConfigError: strategy\.params: construction_failed: S\(\*\*params\) "
            r"\(.*user_mod\.py, line 5\) raised ValueError: bad k$",
        ),
    ],
)
def test_a_broken_strategy_module_is_one_line(
    tmp_path: Path, module: str, params: str, expected: str
) -> None:
    make_bars(n_assets=2, n_bars=20, seed=1).write_parquet(tmp_path / "bars.parquet")
    (tmp_path / "user_mod.py").write_text(module)
    config = tmp_path / "run.yaml"
    config.write_text(
        f"data: {{prices: bars.parquet}}\nstrategy: {{name: 'user_mod:S', params: {params}}}\n"
    )
    out = _cli("run", str(config), "--no-report", cwd=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert re.search(expected, lines[0]), lines[0]
    verbose = _cli("--traceback", "run", str(config), "--no-report", cwd=tmp_path)
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr


def test_control_characters_in_data_never_reach_the_terminal(tmp_path: Path) -> None:
    name = "\x1b]0;PWNED-TITLE\x07\x1b[31mEVIL\x1b[0m"
    pl.DataFrame(
        {
            "timestamp": [datetime(2024, 1, 2)],
            "asset": [name],
            "open": [1.0],
            "high": [1.0],
            "low": [1.0],
            "close": [float("nan")],
            "volume": [1.0],
        }
    ).write_parquet(tmp_path / "bars.parquet")
    out = _cli("validate", str(tmp_path / "bars.parquet"), cwd=tmp_path)
    assert out.returncode == 1
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "\\x1b]0;PWNED-TITLE\\x07\\x1b[31mEVIL" in out.stdout


def test_terminal_safe_keeps_text_and_layout() -> None:
    assert terminal_safe("a\tb\nc") == "a\tb\nc"
    assert terminal_safe("x\x1b[2Jy\x9b\x00") == "x\\x1b[2Jy\\x9b\\x00"
    assert terminal_safe("Zürich €") == "Zürich €"
