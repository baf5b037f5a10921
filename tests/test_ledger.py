"""The trial ledger (every sweep recorded by the data's checksum; concurrent appends from
processes), a sweep's deflated Sharpe ratio and PBO, the locked hold-out, and the sweep's
report and notebook display. Every ledger lives under ``tmp_path`` (the suite's default ledger
is a temporary directory too: ``conftest.py``)."""

from __future__ import annotations

import json
import math
import multiprocessing
import pickle
import re
import warnings
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml4t.backtest import Backtest, ConfigError, PolarsDataFeed, TopKStrategy, ledger_store, stats
from ml4t.backtest.errors import HoldOutError, HoldOutWarning, StatsError
from ml4t.backtest.study import Sweep, SweepResult, TrialLedger, data_checksum, record_trials
from ml4t.backtest.synthetic import make_bars

BARS = make_bars(n_assets=6, n_bars=200, seed=21)
CUT = datetime(2020, 8, 3)  # bar 153 of 200 (weekdays from 2020-01-01)


def checksum_of(text: str) -> str:
    return "sha256:" + text * 64


# ------------------------------------------------------------------------------ the ledger


def test_ledger_counts_each_variant_once_and_skips_failures(tmp_path: Path) -> None:
    c = checksum_of("a")
    record_trials(
        c,
        "sweep",
        [
            {"key": "x", "sharpe": 0.05, "params": {"k": 1}, "metrics": {"sharpe": 0.8}},
            {"key": "y", "sharpe": -0.02},
            {"key": "z", "sharpe": None, "status": "error"},
            {"key": "w", "sharpe": math.nan},
        ],
        root=tmp_path,
    )
    record_trials(
        c, "walkforward", pl.DataFrame({"key": ["x", "v"], "sharpe": [0.07, 0.01]}), root=tmp_path
    )
    ledger = TrialLedger(tmp_path)
    trials = ledger.trials(c)
    assert trials.height == 6 and list(trials.columns) == list(ledger_store.TRIALS_SCHEMA)
    assert trials["kind"].to_list() == ["sweep"] * 4 + ["walkforward"] * 2
    assert json.loads(trials["params"][0]) == {"k": 1}
    assert trials["sharpe"][3] is None  # NaN stored as undefined
    variants = ledger.variants(c)
    assert variants["key"].to_list() == ["y", "x", "v"]  # x counted once, its latest record
    assert variants.filter(pl.col("key") == "x")["sharpe"][0] == 0.07
    count = ledger.count(c)
    assert count.n_trials == 3 and count.records == 6 and count.runs == 2
    assert count.sharpe_variance == pytest.approx(float(np.var([-0.02, 0.07, 0.01], ddof=1)))
    assert ledger.checksums() == [c]
    assert TrialLedger(tmp_path / "empty").count(c).n_trials == 0


def _append(root: str, worker: int) -> int:
    for run in range(5):
        rows = [{"key": f"w{worker}-r{run}-{i}", "sharpe": 0.01 * i} for i in range(3)]
        record_trials(checksum_of("b"), "sweep", rows, root=root)
    return worker


def test_concurrent_appends_from_processes_lose_nothing(tmp_path: Path) -> None:
    """Two spawned processes and this one append at the same time: every record is read back
    and no temporary file is left."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        futures = [pool.submit(_append, str(tmp_path), w) for w in (1, 2)]
        _append(str(tmp_path), 0)
        assert sorted(f.result() for f in futures) == [1, 2]
    trials = TrialLedger(tmp_path).trials(checksum_of("b"))
    assert trials.height == 45 and trials["key"].n_unique() == 45
    assert trials["run"].n_unique() == 15
    folder = ledger_store.dataset_dir(tmp_path, checksum_of("b")) / "trials"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: record_trials("md5:00", "sweep", [{"key": "a"}], r), "checksum: hex"),
        (lambda r: record_trials(checksum_of("c"), "a sweep", [{"key": "a"}], r), "kind"),
        (lambda r: record_trials(checksum_of("c"), "sweep", [], r), "rows: empty"),
        (
            lambda r: record_trials(checksum_of("c"), "sweep", [{"sharpe": 1.0}], r),
            r"rows\[0\].key: required",
        ),
        (
            lambda r: record_trials(checksum_of("c"), "sweep", [{"key": "a", "pnl": 1}], r),
            r"rows\[0\].pnl: unknown",
        ),
        (
            lambda r: record_trials(checksum_of("c"), "sweep", [{"key": "a", "sharpe": "x"}], r),
            r"rows\[0\].sharpe: number",
        ),
    ],
)
def test_bad_ledger_rows_are_clear_errors(call: object, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        call(tmp_path)  # type: ignore[operator]


# ------------------------------------------------------------------- a sweep's statistics


def topk_sweep(feed: PolarsDataFeed, ks: list[int], score: str = "score") -> Sweep:
    return Sweep(feed, TopKStrategy, {"score": [score], "k": ks})


def test_a_sweep_records_its_trials_and_the_dsr_counts_every_variant(tmp_path: Path) -> None:
    feed = PolarsDataFeed(BARS)
    first = topk_sweep(feed, [1, 2, 3]).run(progress=False, keep="equity", ledger=tmp_path)
    checksum = data_checksum(feed)
    assert first.ledger == tmp_path and first.checksum == checksum
    ledger = TrialLedger(tmp_path)
    trials = ledger.trials(checksum)
    assert trials.height == 3 and set(trials["kind"]) == {"sweep"}
    per_period = first.table["sharpe"] / first.table["periods_per_year"].sqrt()
    np.testing.assert_allclose(trials["sharpe"].to_numpy(), per_period.to_numpy(), rtol=1e-15)
    dsr = first.deflated_sharpe()
    assert dsr.source == "ledger" and dsr.n_trials == 3

    second = topk_sweep(feed, [4, 5]).run(progress=False, keep="equity", ledger=tmp_path)
    topk_sweep(feed, [1, 2, 3]).run(progress=False, ledger=tmp_path)  # the same variants again
    assert ledger.count(checksum).records == 8 and ledger.count(checksum).n_trials == 5
    dsr = second.deflated_sharpe()
    variance = float(np.var(ledger.variants(checksum)["sharpe"].to_numpy(), ddof=1))
    winner = int(second.best("sharpe")["trial"])  # type: ignore[call-overload]
    returns = second.equity(winner)["equity"].pct_change().drop_nulls()
    expected = stats.deflated_sharpe(returns, 5, variance)
    assert (dsr.n_trials, dsr.trial) == (5, winner)
    assert dsr.dsr == expected.dsr and dsr.sharpe_variance == pytest.approx(variance)
    only = second.deflated_sharpe(source="sweep")
    assert only.n_trials == 2 and only.source == "sweep"
    # Counting every variant deflates at least as hard as counting the last sweep's.
    assert dsr.expected_max_sharpe > only.expected_max_sharpe

    saved = SweepResult.load(second.save(tmp_path / "saved"))
    assert saved.deflated_sharpe().dsr == dsr.dsr


def test_a_sweep_without_a_ledger_or_without_equity(tmp_path: Path) -> None:
    feed = PolarsDataFeed(BARS)
    unrecorded = topk_sweep(feed, [1, 2]).run(progress=False, keep="equity", ledger=False)
    assert unrecorded.ledger is None
    assert TrialLedger(tmp_path).trials(data_checksum(feed)).height == 0
    with pytest.raises(ConfigError, match="source: 'ledger'"):
        unrecorded.deflated_sharpe()
    assert unrecorded.deflated_sharpe(source="sweep").n_trials == 2
    metrics_only = topk_sweep(feed, [1, 2]).run(progress=False, ledger=tmp_path)
    with pytest.raises(ConfigError, match=r"keep: .*keep='equity'"):
        metrics_only.deflated_sharpe()
    with pytest.raises(ConfigError, match=r"keep: .*keep='equity'"):
        metrics_only.pbo()
    with pytest.raises(ConfigError, match="ledger: expected"):
        topk_sweep(feed, [1]).run(progress=False, ledger=3)  # type: ignore[arg-type]


def test_a_sweeps_pbo_is_the_pbo_of_its_returns(tmp_path: Path) -> None:
    feed = PolarsDataFeed(BARS)
    result = topk_sweep(feed, [1, 2, 3, 4]).run(progress=False, keep="equity", ledger=tmp_path)
    matrix = np.column_stack(
        [result.equity(i)["equity"].pct_change().drop_nulls().to_numpy() for i in range(4)]
    )
    pbo = result.pbo(n_splits=8)
    expected = stats.probability_of_backtest_overfitting(matrix, n_splits=8)
    np.testing.assert_array_equal(pbo.logits, expected.logits)
    assert pbo.trial_names == ("0", "1", "2", "3") and pbo.pbo == expected.pbo
    with pytest.raises(StatsError, match="n_splits: even"):
        result.pbo(n_splits=7)


# --------------------------------------------------------------------------- the hold-out


def test_a_locked_hold_out_is_hidden_from_backtests_and_studies(tmp_path: Path) -> None:
    feed = PolarsDataFeed(BARS)
    full_checksum = data_checksum(feed)
    info = feed.hold_out(CUT, ledger=tmp_path)
    assert info.locked and info.rows == 6 * 47 and feed.hold_out_info is info
    visible = PolarsDataFeed(BARS.filter(pl.col("timestamp") < CUT))
    assert feed.frame.equals(visible.frame) and feed.n_rows == visible.n_rows
    assert data_checksum(feed) == data_checksum(visible) == info.visible_checksum
    strategy = TopKStrategy("score", k=2)
    held_result = Backtest(feed, strategy).run(progress=False)
    assert held_result.equity["timestamp"].max() < CUT  # type: ignore[operator]
    assert held_result.metrics == Backtest(visible, strategy).run(progress=False).metrics
    # The sweep's workers (a spawned process here) get only the visible rows.
    table = topk_sweep(feed, [2]).run(
        executor="processes", max_workers=1, progress=False, keep="equity", ledger=tmp_path
    )
    assert table.equity(0)["timestamp"].max() < CUT  # type: ignore[operator]
    assert table.checksum == info.visible_checksum
    assert pickle.loads(pickle.dumps(feed)).frame.height == visible.n_rows

    unlocked = feed.unlock_hold_out()
    assert not unlocked.locked and unlocked.unlocked_at is not None
    assert feed.n_rows == BARS.height and data_checksum(feed) == full_checksum
    after = Backtest(feed, strategy).run(progress=False)
    assert after.metrics == Backtest(PolarsDataFeed(BARS), strategy).run(progress=False).metrics
    ledger = TrialLedger(tmp_path)
    assert ledger.events(info.visible_checksum)["event"].to_list() == [
        "hold_out",
        "hold_out_unlocked",
    ]
    assert ledger.events(full_checksum)["event"].to_list() == ["hold_out_unlocked"]
    details = json.loads(ledger.events(full_checksum)["details"][0])
    assert details["rows"] == info.rows and details["full_checksum"] == full_checksum


def test_a_hold_out_is_touched_once(tmp_path: Path) -> None:
    feed = PolarsDataFeed(BARS)
    with pytest.raises(HoldOutError, match="unlock_hold_out: none"):
        feed.unlock_hold_out()
    feed.hold_out("2020-08-03", ledger=tmp_path)
    with pytest.raises(HoldOutError, match=r"hold_out: once: .*locked"):
        feed.hold_out(CUT, ledger=tmp_path)
    view = feed.study_view()
    assert view is not feed and view is feed.study_view()
    with pytest.raises(HoldOutError, match="unlock_hold_out: copy"):
        view.unlock_hold_out()
    copy = pickle.loads(pickle.dumps(feed))
    with pytest.raises(HoldOutError, match="unlock_hold_out: copy"):
        copy.unlock_hold_out()
    feed.unlock_hold_out()
    # A study's view taken while locked stays the visible rows after the unlock.
    assert view.n_rows == 6 * 153 and feed.n_rows == 6 * 200
    assert feed.study_view() is feed
    with pytest.raises(HoldOutError, match=r"unlock_hold_out: once: .*already unlocked"):
        feed.unlock_hold_out()
    with pytest.raises(HoldOutError, match=r"hold_out: once: .*already unlocked"):
        feed.hold_out(CUT, ledger=tmp_path)
    # The ledger remembers: the same hold-out of the same data declared again warns.
    again = PolarsDataFeed(BARS)
    with pytest.warns(HoldOutWarning, match=r"already_unlocked: .*no longer out of sample"):
        again.hold_out(CUT, ledger=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PolarsDataFeed(BARS).hold_out(datetime(2020, 9, 1), ledger=tmp_path)  # another cut


def test_hold_out_bad_input(tmp_path: Path) -> None:
    feed = PolarsDataFeed(BARS)
    with pytest.raises(ConfigError, match=r"hold_out: start: .*nothing would be left"):
        feed.hold_out(datetime(2019, 1, 1), ledger=tmp_path)
    with pytest.raises(ConfigError, match=r"hold_out: start: .*nothing is held out"):
        feed.hold_out(datetime(2030, 1, 1), ledger=tmp_path)
    with pytest.raises(ConfigError, match="hold_out: start: expected"):
        feed.hold_out(20200803, ledger=tmp_path)  # type: ignore[arg-type]
    assert feed.hold_out_info is None and feed.n_rows == BARS.height


def test_a_streaming_feed_holds_out_the_same_rows(tmp_path: Path) -> None:
    streaming = PolarsDataFeed(BARS, chunk_rows=300)
    in_memory = PolarsDataFeed(BARS)
    a = streaming.hold_out(CUT, ledger=tmp_path)
    b = in_memory.hold_out(CUT, ledger=tmp_path)
    assert a.rows == b.rows == 6 * 47
    strategy = TopKStrategy("score", k=2)
    held = Backtest(streaming, strategy).run(progress=False)
    assert held.metrics == Backtest(in_memory, strategy).run(progress=False).metrics
    streaming.unlock_hold_out()
    assert streaming.n_rows == BARS.height
    full = Backtest(streaming, strategy).run(progress=False)
    assert full.equity.height == 200


# ------------------------------------------------------------------ report and display


def test_the_sweep_report_shows_the_dsr_and_the_pbo(tmp_path: Path) -> None:
    feed = PolarsDataFeed(BARS)
    result = topk_sweep(feed, [1, 2, 3, 4]).run(progress=False, keep="equity", ledger=tmp_path)
    page = result.report(tmp_path / "sweep.html", "sharpe", n_splits=8).read_text()
    dsr = result.deflated_sharpe()
    assert f"Deflated Sharpe ratio of trial {dsr.trial}: <b>{dsr.dsr:.4f}</b>" in page
    assert f"Probability of backtest overfitting: <b>{result.pbo(8).pbo:.3f}</b>" in page
    assert 'id="chart-pbo"' in page
    html = result._repr_html_()
    assert f"DSR {dsr.dsr:.4f}" in html and "PBO" in html and "<table>" in html
    bare = topk_sweep(feed, [1, 2]).run(progress=False, ledger=tmp_path)
    page = bare.report(tmp_path / "bare.html", "sharpe").read_text()
    assert "Deflated Sharpe ratio: not available: keep:" in page and "chart-pbo" not in page
    assert "DSR and PBO need keep='equity'" in bare._repr_html_()


def test_the_pbo_chart_renders_in_chromium(tmp_path: Path) -> None:
    from test_report import PROBE_ELEMENT, console_errors, render

    feed = PolarsDataFeed(BARS)
    result = topk_sweep(feed, [1, 2, 3]).run(progress=False, keep="equity", ledger=tmp_path)
    dom, stderr = render(result.report(tmp_path / "sweep.html", "sharpe", n_splits=8), tmp_path)
    assert PROBE_ELEMENT not in dom and console_errors(stderr) == []
    match = re.search(r'<div id="chart-pbo" class="([^"]*)"', dom)
    assert match is not None and "js-plotly-plot" in match.group(1)
