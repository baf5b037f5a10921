"""Inputs of ``PolarsDataFeed``: frames, lazy frames, Parquet files, globs, hive directories and
CSV; asset column names; time zones; ``start``/``end`` pushed into the scan; and the storage
helper ``write_dataset``."""

from __future__ import annotations

import doctest
import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from ml4t.backtest import PolarsDataFeed
from ml4t.backtest import config as config_module
from ml4t.backtest.data import features as features_module
from ml4t.backtest.data import feed as data_module
from ml4t.backtest.data import storage as storage_module
from ml4t.backtest.data import validation as validation_module
from ml4t.backtest.data.storage import DATASET_MARKER, write_dataset
from ml4t.backtest.errors import ConfigError, DataValidationError
from ml4t.backtest.synthetic import make_bars

BARS = make_bars(n_assets=3, n_bars=70, seed=11)  # Jan..Apr 2020, daily
REFERENCE = PolarsDataFeed(BARS)


@pytest.mark.parametrize(
    "module",
    [data_module, validation_module, storage_module, config_module, features_module],
    ids=lambda m: m.__name__.rsplit(".", 1)[-1],
)
def test_docstring_examples(module: object) -> None:
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert failures == 0


def test_dataframe_and_lazyframe_give_the_same_frame() -> None:
    assert PolarsDataFeed(BARS.lazy()).frame.equals(REFERENCE.frame)
    assert REFERENCE.assets == ["A0000", "A0001", "A0002"]
    assert REFERENCE.signal_columns == ["score", "signal"]
    assert not REFERENCE.streaming and len(REFERENCE) == BARS.height


def test_parquet_file_glob_and_directory(tmp_path: Path) -> None:
    BARS.write_parquet(tmp_path / "one.parquet")
    assert PolarsDataFeed(tmp_path / "one.parquet").frame.equals(REFERENCE.frame)
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, piece in enumerate(BARS.partition_by("asset")):
        piece.write_parquet(parts / f"piece-{i}.parquet")
    assert PolarsDataFeed(str(parts / "*.parquet")).frame.equals(REFERENCE.frame)
    assert PolarsDataFeed(parts).frame.equals(REFERENCE.frame)
    assert PolarsDataFeed.scan(parts).frame.equals(REFERENCE.frame)


def test_csv_file(tmp_path: Path) -> None:
    BARS.write_csv(tmp_path / "bars.csv")
    feed = PolarsDataFeed(tmp_path / "bars.csv")
    assert feed.frame.drop("ts").equals(REFERENCE.frame.drop("ts"))


def test_missing_path_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"^prices: source: no file matches"):
        PolarsDataFeed(tmp_path / "nope.parquet")


@pytest.mark.parametrize("name", ["symbol", "ticker", "Instrument"])
def test_asset_column_names(name: str) -> None:
    df = BARS.rename({"asset": name})
    explicit = {"asset_column": name} if name == "Instrument" else {}
    feed = PolarsDataFeed(df, **explicit)
    assert feed.asset_column == name
    assert feed.frame.equals(REFERENCE.frame)


def test_rename_maps_source_columns() -> None:
    df = BARS.rename({"timestamp": "Date", "close": "Adj Close", "asset": "Ticker"})
    feed = PolarsDataFeed(
        df, rename={"Date": "timestamp", "Adj Close": "close"}, asset_column="Ticker"
    )
    assert feed.frame.equals(REFERENCE.frame)
    with pytest.raises(DataValidationError, match=r"^Nope: missing_column: rename"):
        PolarsDataFeed(BARS, rename={"Nope": "close"})


def test_categorical_and_enum_assets() -> None:
    for dtype in (pl.Categorical(), pl.Enum(["A0002", "A0001", "A0000"])):
        feed = PolarsDataFeed(BARS.with_columns(pl.col("asset").cast(dtype)))
        assert feed.frame.equals(REFERENCE.frame)


@pytest.mark.parametrize("zone", [None, "UTC", "America/New_York"])
def test_naive_and_aware_timestamps(zone: str | None) -> None:
    df = BARS if zone is None else BARS.with_columns(pl.col("timestamp").dt.replace_time_zone(zone))
    feed = PolarsDataFeed(df, chunk_by="1mo")
    assert feed.time_zone == zone
    assert pl.concat(list(feed.iter_chunks())).equals(PolarsDataFeed(df).frame)
    first = feed.to_datetime(int(PolarsDataFeed(df).frame["ts"][0]))
    assert first.replace(tzinfo=None) == BARS["timestamp"][0]
    # month chunks follow the data's own calendar
    assert feed.to_datetime(feed._bounds[0]).replace(tzinfo=None) == datetime(2020, 2, 1)


def test_date_timestamps() -> None:
    df = BARS.with_columns(pl.col("timestamp").cast(pl.Date))
    assert PolarsDataFeed(df).frame.equals(REFERENCE.frame)
    assert PolarsDataFeed(df, chunk_rows=10).frame.equals(REFERENCE.frame)


def test_start_and_end_are_inclusive() -> None:
    feed = PolarsDataFeed(BARS, start="2020-02-03", end=date(2020, 2, 7))
    days = feed.frame["ts"].cast(pl.Datetime("ns")).dt.date().unique().sort().to_list()
    assert days == [date(2020, 2, d) for d in (3, 4, 5, 6, 7)]
    same = PolarsDataFeed(BARS, start=datetime(2020, 2, 3), end=datetime(2020, 2, 7))
    assert same.frame.equals(feed.frame)
    aware = BARS.with_columns(pl.col("timestamp").dt.replace_time_zone("America/New_York"))
    # a naive bound is wall-clock time in the data's zone
    assert PolarsDataFeed(aware, start="2020-02-03", end="2020-02-07").n_rows == feed.n_rows


def test_write_dataset_layout_and_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    files = write_dataset(BARS, root, partition_by="month", assets=REFERENCE.assets)
    assert sorted(p.relative_to(root).parts[:2] for p in files) == [
        ("year=2020", f"month={m}") for m in (1, 2, 3, 4)
    ]
    schema = pl.read_parquet_schema(files[0])
    assert schema["asset"] == pl.Enum(REFERENCE.assets)
    assert "year" not in schema and "month" not in schema  # derived keys live in the path
    assert json.loads((root / DATASET_MARKER).read_text())["derived"] == ["year", "month"]
    feed = PolarsDataFeed(root)
    assert feed.frame.equals(REFERENCE.frame)
    assert feed.signal_columns == ["score", "signal"]  # partition keys are not features
    with pytest.raises(ConfigError, match="not empty"):
        write_dataset(BARS, root)
    write_dataset(BARS, root, partition_by="asset", existing="overwrite")
    by_asset = PolarsDataFeed(root)
    assert by_asset.frame.equals(REFERENCE.frame)
    assert pl.read_parquet_schema(next(root.rglob("*.parquet")))["asset"] == pl.Categorical()


def test_write_dataset_appends_pieces(tmp_path: Path) -> None:
    months = BARS.with_columns(m=pl.col("timestamp").dt.month()).partition_by("m")
    for piece in months:
        write_dataset(piece.drop("m"), tmp_path, partition_by="year", existing="append")
    assert len(list((tmp_path / "year=2020").glob("part-*.parquet"))) == 4
    assert PolarsDataFeed(tmp_path).frame.equals(REFERENCE.frame)
    assert PolarsDataFeed(tmp_path, chunk_by="1w").frame.equals(REFERENCE.frame)


def test_time_filters_are_pushed_into_the_scan(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_dataset(BARS, root, partition_by="month")
    feed = PolarsDataFeed(root, start="2020-02-03", end="2020-02-28", chunk_by="1w")
    plan = feed._prices.explain()
    scan = plan[plan.index("Parquet SCAN") :]
    assert "SELECTION" in scan and "timestamp" in scan.split("SELECTION", 1)[1]
    # whole files outside the range are pruned by the derived year/month partitions
    assert "month=2" in scan and "month=1/" not in scan and "month=3" not in scan
    in_memory = PolarsDataFeed(BARS, start="2020-02-03", end="2020-02-28")
    assert pl.concat(list(feed.iter_chunks())).equals(in_memory.frame)


def test_write_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"^nope: missing_column"):
        write_dataset(BARS, tmp_path / "x", partition_by="nope")
    with pytest.raises(DataValidationError, match=r"^timestamp: missing_column"):
        write_dataset(BARS.drop("timestamp"), tmp_path / "y")
