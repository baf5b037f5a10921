"""The feed's one-pass test of a chunk (``validation.all_clear``, the engine's fused row check
over the chunk's buffers) gives the verdict of the rules it stands for: the sort, duplicate,
bar and feature rules, as the Polars expressions of the per-rule passes state them (the
reference below). Checked on the hostile frames of ``test_fuzz_frames`` (every chunk the feed
tests is tested both ways), on frames with one rule broken at a time, and across chunk
boundaries (a rule broken only between two chunks)."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from hypothesis import given

from ml4t.backtest import PolarsDataFeed
from ml4t.backtest.data import feed as feed_module
from ml4t.backtest.data import validation
from ml4t.backtest.data.validation import FrameSpec
from ml4t.backtest.synthetic import make_bars
from test_fuzz_frames import SETTINGS, _options, build_feed, build_frame, frame_specs


def reference(frame: pl.DataFrame, spec: FrameSpec, *, features: bool) -> bool:
    """The rules as Polars expressions (the per-rule passes' own), all counted in one select."""
    checks = validation._bar_checks() + (validation._feature_checks(spec) if features else [])
    masks = [
        validation._out_of_order(spec),
        validation._duplicates(spec)[1],
        *[expr for _, _, expr, _ in checks],
    ]
    found = frame.select([m.fill_null(False).any().alias(f"c{i}") for i, m in enumerate(masks)])
    return not any(found.row(0))


class Recording:
    """Wraps ``all_clear`` in the feed: each chunk's verdict is compared with the reference."""

    def __init__(self) -> None:
        self.calls = 0
        self.verdicts: set[bool] = set()

    def __call__(self, frame: pl.DataFrame, spec: FrameSpec, n_assets: int, **kw: Any) -> bool:
        verdict = validation.all_clear(frame, spec, n_assets, **kw)
        assert verdict == reference(frame, spec, **kw)
        self.calls += 1
        self.verdicts.add(verdict)
        return verdict


@SETTINGS
@given(spec=frame_specs())
def test_the_one_pass_verdict_is_the_rules_verdict_on_hostile_frames(spec: dict[str, Any]) -> None:
    recording = Recording()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(feed_module, "all_clear", recording)
        frame = build_frame(spec)
        build_feed(frame, _options(spec))


BARS = make_bars(n_assets=3, n_bars=40, seed=3)
BROKEN = {
    "unsorted": lambda f: pl.concat([f.slice(6), f.slice(0, 6)]),
    "duplicate": lambda f: pl.concat([f, f.slice(10, 1)]).sort("timestamp", "asset"),
    "nan_close": lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 17).then(float("nan")).otherwise("close").alias("close")
    ),
    "zero_open": lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(0.0).otherwise("open").alias("open")
    ),
    "negative_volume": lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 9).then(-1.0).otherwise("volume").alias("volume")
    ),
    "low_above_high": lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 30).then(pl.col("high") * 2).otherwise("low").alias("low")
    ),
    "close_above_high": lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 31)
        .then(pl.col("high") * 2)
        .otherwise("close")
        .alias("close")
    ),
    "inf_signal": lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == 44).then(float("inf")).otherwise("signal").alias("signal")
    ),
}


@pytest.mark.parametrize("name", ["clean", *BROKEN])
@pytest.mark.parametrize("chunks", [1, 7], ids=["one_chunk", "seven_chunks"])
def test_each_rule_broken_alone_is_seen(name: str, chunks: int) -> None:
    frame = BARS if name == "clean" else BROKEN[name](BARS)
    if chunks > 1:  # Parquet-like row groups, one boundary inside a timestamp
        size = frame.height // chunks + 1
        frame = pl.concat(
            [frame.slice(i, size).rechunk() for i in range(0, frame.height, size)], rechunk=False
        )
    recording = Recording()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(feed_module, "all_clear", recording)
        try:
            PolarsDataFeed(frame)
        except Exception:
            pass
    assert recording.calls == 1
    assert recording.verdicts == {name == "clean"}


def test_a_rule_broken_only_across_a_chunk_boundary_is_seen() -> None:
    """The last row of one chunk and the first of the next are out of order; each chunk alone
    is sorted."""
    first, second = BARS.slice(0, 60).rechunk(), BARS.slice(60).rechunk()
    swapped = pl.concat([second.slice(0, 3), first, second.slice(3)], rechunk=False)
    recording = Recording()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(feed_module, "all_clear", recording)
        PolarsDataFeed(swapped)
    assert recording.verdicts == {False}
