"""``CombinatorialPurgedCV``'s split logic: exact splits worked by hand, purging and embargo in
bars and as durations (rows of one timestamp together), the paths, and bad input."""

from __future__ import annotations

import doctest
import itertools
import math
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from ml4t.backtest.errors import ConfigError, DataValidationError
from ml4t.backtest.study import cpcv as cpcv_module
from ml4t.backtest.study.cpcv import CombinatorialPurgedCV


def test_docstring_examples() -> None:
    failures, _ = doctest.testmod(cpcv_module, optionflags=doctest.ELLIPSIS)
    assert failures == 0


def test_exact_splits_of_a_tiny_example() -> None:
    """12 bars, N = 4 groups of 3 (G0 = 0-2, G1 = 3-5, G2 = 6-8, G3 = 9-11), k = 2, label
    horizon 1 bar, embargo 1 bar. For each run of adjacent test groups spanning bars a..b,
    training bars a-1 .. b+1 are purged (their label windows [t, t+1] overlap the test labels'
    span [a, b+1]) and bar b+2 is embargoed. Worked by hand:

    - (0, 1): test 0-5; purge 6; embargo 7; train 8-11.
    - (0, 2): test 0-2, 6-8; purge 3, 5, 9; embargo 4, 10; train 11.
    - (0, 3): test 0-2, 9-11; purge 3, 8; embargo 4; train 5-7.
    - (1, 2): test 3-8; purge 2, 9; embargo 10; train 0, 1, 11.
    - (1, 3): test 3-5, 9-11; purge 2, 6, 8; embargo 7; train 0, 1.
    - (2, 3): test 6-11; purge 5; train 0-4.
    """
    cv = CombinatorialPurgedCV(4, 2, label_horizon=1, embargo=1)
    expected = [
        ((0, 1), [*range(6)], [8, 9, 10, 11], 1, 1),
        ((0, 2), [0, 1, 2, 6, 7, 8], [11], 3, 2),
        ((0, 3), [0, 1, 2, 9, 10, 11], [5, 6, 7], 2, 1),
        ((1, 2), [3, 4, 5, 6, 7, 8], [0, 1, 11], 2, 1),
        ((1, 3), [3, 4, 5, 9, 10, 11], [0, 1], 3, 1),
        ((2, 3), [6, 7, 8, 9, 10, 11], [0, 1, 2, 3, 4], 1, 0),
    ]
    splits = list(cv.split(12))
    assert len(splits) == cv.n_splits == cv.get_n_splits() == 6
    for split, (groups, test, train, purged, embargoed) in zip(splits, expected, strict=True):
        assert split.test_groups == groups
        assert split.test.tolist() == test
        assert split.train.tolist() == train
        assert (split.purged, split.embargoed) == (purged, embargoed)
    assert splits[1].test_ranges == ((0, 3), (6, 9))
    assert splits[3].train_ranges == ((0, 2), (11, 12))
    assert [s.index for s in splits] == list(range(6))


def test_no_purge_without_a_horizon_and_uneven_groups() -> None:
    """10 bars in 3 groups: sizes 4, 3, 3 (the first groups take the remainder)."""
    cv = CombinatorialPurgedCV(3, 1)
    assert cv.groups(10) == [(0, 4), (4, 7), (7, 10)]
    for split in cv.split(10):
        assert sorted([*split.train.tolist(), *split.test.tolist()]) == list(range(10))
        assert split.purged == split.embargoed == 0


@pytest.mark.parametrize(
    ("n_groups", "k", "horizon", "embargo"),
    [(5, 2, 3, 2), (6, 3, 0, 4), (6, 2, 7, 0), (4, 1, 2, 2), (7, 3, 1, 1)],
)
def test_purge_and_embargo_are_exact_in_bars(
    n_groups: int, k: int, horizon: int, embargo: int
) -> None:
    """On 60 bars: no training bar's label window [t, t + h] overlaps the test labels' span
    [a, b + h] of any run of adjacent test groups, no training bar sits within the embargo after
    it, and every other bar is kept (nothing more is dropped)."""
    cv = CombinatorialPurgedCV(n_groups, k, label_horizon=horizon, embargo=embargo)
    group_rows = cv.groups(60)
    for split in cv.split(60):
        runs = []
        for g in split.test_groups:
            if runs and runs[-1][1] == group_rows[g][0] - 1:
                runs[-1] = (runs[-1][0], group_rows[g][1] - 1)
            else:
                runs.append((group_rows[g][0], group_rows[g][1] - 1))
        dropped = set()
        for a, b in runs:
            dropped |= set(range(a - horizon, b + horizon + embargo + 1))
        test = set(split.test.tolist())
        expected_train = [t for t in range(60) if t not in test and t not in dropped]
        assert split.train.tolist() == expected_train
        assert split.purged + split.embargoed == 60 - len(test) - len(expected_train)


def test_long_frames_keep_the_assets_of_a_timestamp_together() -> None:
    days = [datetime(2024, 1, 1) + timedelta(days=i) for i in range(9)]
    frame = pl.DataFrame(
        {"timestamp": [d for d in days for _ in range(3)], "asset": ["a", "b", "c"] * 9}
    )
    cv = CombinatorialPurgedCV(3, 1, label_horizon=1)
    assert cv.groups(frame) == [(0, 9), (9, 18), (18, 27)]
    split = list(cv.split(frame))[1]  # test on days 3-5
    assert split.test.tolist() == list(range(9, 18))
    # days 2 and 6 purged: three rows each
    assert split.train.tolist() == [*range(0, 6), *range(21, 27)]
    assert split.purged == 6
    for row_split, bar_split in zip(cv.split(frame), cv.split(9), strict=True):
        assert (row_split.train // 3).tolist() == np.repeat(bar_split.train, 3).tolist()


def weekdays(weeks: int) -> list[date]:
    start = date(2024, 1, 1)  # a Monday
    return [start + timedelta(days=7 * w + d) for w in range(weeks) for d in range(5)]


def test_durations_count_calendar_time_not_bars() -> None:
    """Four weeks of weekdays in four groups (one week each), testing week 2. A 3-day label
    horizon reaches from Friday into Monday: only week 1's Friday is purged before the test
    (Thursday + 3 days is Sunday) and week 3's Monday after it (within 3 days of the test's
    last Friday); a 1-day embargo then drops week 3's Tuesday. In bars (3), Wednesday to Friday
    of week 1 and Monday to Wednesday of week 3 are purged instead."""
    days = pl.Series("timestamp", weekdays(4))
    by_time = list(CombinatorialPurgedCV(4, 1, label_horizon="3d", embargo="1d").split(days))[1]
    week1, week3 = set(range(0, 5)), set(range(10, 15))
    dropped = set(range(20)) - set(by_time.train.tolist()) - set(by_time.test.tolist())
    assert dropped == {4, 10, 11}
    assert (by_time.purged, by_time.embargoed) == (2, 1)
    by_bars = list(CombinatorialPurgedCV(4, 1, label_horizon=3).split(days))[1]
    dropped = set(range(20)) - set(by_bars.train.tolist()) - set(by_bars.test.tolist())
    assert dropped == {2, 3, 4, 10, 11, 12} and dropped <= week1 | week3
    as_timedelta = CombinatorialPurgedCV(
        4, 1, label_horizon=timedelta(days=3), embargo=np.timedelta64(1, "D")
    )
    assert list(as_timedelta.split(days))[1].train.tolist() == by_time.train.tolist()
    # numpy datetimes and a frame give the same splits
    numpy_days = np.array(weekdays(4), dtype="datetime64[D]")
    assert list(as_timedelta.split(numpy_days))[1].train.tolist() == by_time.train.tolist()


def test_durations_in_a_time_zone() -> None:
    ts = pl.datetime_range(
        datetime(2024, 3, 1),
        datetime(2024, 3, 20),
        "1d",
        time_zone="America/New_York",
        eager=True,
    ).alias("timestamp")
    naive = ts.dt.replace_time_zone(None)
    cv = CombinatorialPurgedCV(4, 2, label_horizon="2d", embargo="1d")
    # calendar days across the DST change (10 March) behave as in local time
    for aware, plain in zip(cv.split(ts), cv.split(naive), strict=True):
        assert aware.train.tolist() == plain.train.tolist()


@pytest.mark.parametrize(("n_groups", "k"), [(2, 1), (4, 2), (6, 2), (6, 3), (7, 4), (8, 1)])
def test_paths_cover_every_group_once(n_groups: int, k: int) -> None:
    cv = CombinatorialPurgedCV(n_groups, k)
    paths = cv.paths()
    assert len(paths) == cv.n_paths == k * math.comb(n_groups, k) // n_groups
    combos = cv.test_groups()
    pieces = []
    for p, path in enumerate(paths):
        assert path.index == p
        assert [piece.group for piece in path.pieces] == list(range(n_groups))
        for piece in path.pieces:
            assert piece.group in combos[piece.split]  # that split tests that group
            pieces.append((piece.split, piece.group))
    # every test piece of every split is used by exactly one path
    every_piece = [(s, g) for s, groups in enumerate(combos) for g in groups]
    assert sorted(pieces) == sorted(every_piece)
    assert len(set(pieces)) == len(pieces)


def test_paths_for_six_groups_two_tested() -> None:
    """N = 6, k = 2: 15 splits, 5 paths. Group 0 is tested by splits 0-4 ((0,1) … (0,5)), so
    path p takes it from split p; group 1 by (0,1) and (1,2) … (1,5): splits 0, 5, 6, 7, 8."""
    paths = CombinatorialPurgedCV(6, 2).paths()
    assert [path.splits[0] for path in paths] == [0, 1, 2, 3, 4]
    assert [path.splits[1] for path in paths] == [0, 5, 6, 7, 8]
    assert paths[0].splits == (0, 0, 1, 2, 3, 4)
    assert paths[4].splits == (4, 8, 11, 13, 14, 14)


def test_scikit_learn_style_unpacking() -> None:
    cv = CombinatorialPurgedCV(5, 2, label_horizon=2)
    features = np.zeros((50, 3))
    pairs = [(train, test) for train, test in cv.split(features, np.zeros(50))]
    assert len(pairs) == cv.get_n_splits(features) == math.comb(5, 2)
    assert all(len(np.intersect1d(train, test)) == 0 for train, test in pairs)
    assert "n_groups=5" in repr(cv)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: CombinatorialPurgedCV(1, 1), ConfigError, "n_groups: at_least_2"),
        (lambda: CombinatorialPurgedCV(4, 4), ConfigError, "n_test_groups: range"),
        (lambda: CombinatorialPurgedCV(4, 0), ConfigError, "n_test_groups: range"),
        (lambda: CombinatorialPurgedCV(4.0, 1), ConfigError, "n_groups: integer"),  # type: ignore[arg-type]
        (lambda: CombinatorialPurgedCV(4, True), ConfigError, "n_test_groups: integer"),
        (lambda: CombinatorialPurgedCV(4, 1, label_horizon=-1), ConfigError, "non_negative"),
        (lambda: CombinatorialPurgedCV(4, 1, embargo="soon"), ConfigError, "embargo: duration"),
        (lambda: CombinatorialPurgedCV(4, 1, embargo="-2d"), ConfigError, "embargo: non_negative"),
        (
            lambda: CombinatorialPurgedCV(4, 1, label_horizon=timedelta(days=-1)),
            ConfigError,
            "label_horizon: non_negative",
        ),
        (
            lambda: CombinatorialPurgedCV(4, 1, label_horizon=1.5),
            ConfigError,
            "label_horizon: type",
        ),  # type: ignore[arg-type]
    ],
)
def test_bad_parameters(make: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make()  # type: ignore[operator]


def test_bad_data() -> None:
    cv = CombinatorialPurgedCV(4, 2, label_horizon=1)
    with pytest.raises(DataValidationError, match="data: too_few_timestamps: 3"):
        list(cv.split(3))
    unsorted = pl.Series("timestamp", [date(2024, 1, 2), date(2024, 1, 1)] + [date(2024, 2, 1)] * 4)
    with pytest.raises(DataValidationError, match=r"timestamp: sorted: .*row 1"):
        list(cv.split(unsorted))
    with pytest.raises(DataValidationError, match="when: missing"):
        list(cv.split(pl.DataFrame({"timestamp": [date(2024, 1, 1)]}), timestamp="when"))
    with pytest.raises(DataValidationError, match="timestamp: dtype"):
        list(cv.split(pl.Series("timestamp", ["2024-01-01"] * 5)))
    with pytest.raises(DataValidationError, match="timestamp: nulls"):
        list(cv.split(pl.Series("timestamp", [date(2024, 1, 1), None, date(2024, 1, 3)])))
    with pytest.raises(ConfigError, match="label_horizon: needs_timestamps"):
        list(CombinatorialPurgedCV(4, 1, label_horizon="2d").split(40))
    with pytest.raises(
        ConfigError, match=r"label_horizon: purge_too_long: split 0 \(test groups \(0,\)\)"
    ):
        list(CombinatorialPurgedCV(2, 1, label_horizon=10).split(20))
    # a long purge is fine while some training rows remain
    assert all(len(s.train) for s in CombinatorialPurgedCV(2, 1, label_horizon=9).split(20))


def test_every_split_partitions_the_rows() -> None:
    """Train, test, purged and embargoed rows add up to all rows, with no overlap."""
    cv = CombinatorialPurgedCV(6, 2, label_horizon=2, embargo=1)
    for split in itertools.islice(cv.split(100), None):
        assert len(np.intersect1d(split.train, split.test)) == 0
        assert len(split.train) + len(split.test) + split.purged + split.embargoed == 100
