"""The engine frame's pages: keep the input's own buffers instead of copying them into one.

A frame read from Parquet comes in chunks (one per row group: 8 or 10 for 1M rows). Polars
exports a multi-chunk frame to Arrow as one batch, copying every column, so the engine is handed
the frame as *pages* instead: frames of one chunk each, imported in place, each a
``MarketData`` page of the run. A page must hold whole timestamps. :func:`timestamp_pages`
cuts the frame so, copying only what it must:

- a chunk boundary between two timestamps is a page boundary (zero copy);
- a boundary inside one timestamp's rows (a panel whose row group ends mid-timestamp) gets a
  *bridge*: that timestamp's rows, copied into a page of their own;
- columns chunked differently (a column the feed computed, such as a constant asset code) are
  cut at every column's boundaries, still without a copy;
- runs of pages smaller than :data:`MIN_PAGE_ROWS` are merged into one copied page, so a frame
  of many tiny chunks (one per day, say) does not pay the engine's per-page setup thousands of
  times (and costs the one copy it always did).

The pages hold the same rows in the same order: only where the buffers live changes, and the
engine's output does not depend on it (``tests/test_engine_pages.py``).
"""

from __future__ import annotations

import itertools

import polars as pl

#: Pages of fewer rows than this are merged (copied) with their neighbours.
MIN_PAGE_ROWS = 1 << 16


def timestamp_pages(frame: pl.DataFrame, ts: str = "ts") -> list[pl.DataFrame]:
    """``frame`` (sorted by ``ts``) as pages in row order, each one chunk in every column and
    holding whole ``ts`` values; only bridges across split timestamps and small pages are
    copied. Each page exports to Arrow in place (Polars copies a multi-chunk frame into one
    batch when it exports it)."""
    if frame.width == 0 or frame.height == 0:
        return [frame]
    boundaries = chunk_boundaries(frame)
    if not boundaries:
        return [frame.rechunk()]
    pages: list[tuple[int, int, bool]] = []  # (start, end, copy)
    pending: tuple[int, int] | None = None  # bridges and small runs, merged into one copy
    for start, end, copy in _cuts(frame.get_column(ts), boundaries):
        if copy or end - start < MIN_PAGE_ROWS:
            pending = (pending[0] if pending else start, end)
            continue
        if pending:
            pages.append((*pending, True))
            pending = None
        pages.append((start, end, False))
    if pending:
        pages.append((*pending, True))
    return [frame.slice(start, end - start).rechunk() for start, end, _ in pages]


def chunk_boundaries(frame: pl.DataFrame) -> list[int]:
    """The rows (ascending, inside the frame) where some column's chunk starts."""
    ends = {
        b for series in frame.get_columns() for b in itertools.accumulate(series.chunk_lengths())
    }
    return sorted(b for b in ends if 0 < b < frame.height)


def chunk_slices(frame: pl.DataFrame) -> list[pl.DataFrame]:
    """``frame`` cut at every column's chunk boundaries: slices in row order, each one chunk
    in every column, none copied (a timestamp may span two of them)."""
    cuts = [0, *chunk_boundaries(frame), frame.height]
    return [frame.slice(a, b - a).rechunk() for a, b in itertools.pairwise(cuts)]


def _cuts(ts: pl.Series, boundaries: list[int]) -> list[tuple[int, int, bool]]:
    """The frame's rows split at ``boundaries``, each boundary inside a timestamp widened to
    that timestamp's rows (a bridge, flagged to be copied): ``(start, end, copy)`` in order.
    Python ints throughout: there are a few boundaries (and building a Series from numpy would
    import ``numpy.ma``, 90 ms in a fresh process)."""
    at = ts.gather(boundaries).to_list()
    before = ts.gather([b - 1 for b in boundaries]).to_list()
    marks: list[tuple[int, int]] = []  # bridges, and plain cuts as (b, b), in row order
    for boundary, value, previous in zip(boundaries, at, before, strict=True):
        if value == previous:  # the boundary splits this timestamp's rows
            start = int(ts.search_sorted(value, side="left"))
            end = int(ts.search_sorted(value, side="right"))
            if marks and marks[-1][1] > start:  # the same timestamp as the last bridge
                start = min(start, marks.pop()[0])
            marks.append((start, end))
        elif not marks or boundary >= marks[-1][1]:
            marks.append((boundary, boundary))
    out: list[tuple[int, int, bool]] = []
    position = 0
    for start, end in marks:
        if start > position:
            out.append((position, start, False))
        if end > start:
            out.append((start, end, True))
        position = max(position, end)
    if position < ts.len():
        out.append((position, ts.len(), False))
    return out
