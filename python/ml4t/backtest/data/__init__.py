"""The data wing: everything between the user's frames and the engine's normalised frame.

- :mod:`~ml4t.backtest.data.feed`: :class:`PolarsDataFeed` (options, universe, pipeline order,
  chunk plan, engine hand-off) and :func:`validate`;
- :mod:`~ml4t.backtest.data.sources`: frames, files, globs and hive directories -> one lazy
  frame, with per-file schema checks;
- :mod:`~ml4t.backtest.data.validation`: the rules, their findings and the cleaning policy;
- :mod:`~ml4t.backtest.data.joins`: point-in-time joins of signal, indicator and context frames;
- :mod:`~ml4t.backtest.data.features`: :class:`FeatureProvider`, the public view of the features;
- :mod:`~ml4t.backtest.data.storage`: :func:`write_dataset`, the Parquet layout the feed reads;
- :mod:`~ml4t.backtest.data.chunks`: the engine frame's pages (the input's chunks, in place).

A bar's walk: ``feed -> sources -> validation -> joins -> validation -> feed -> chunks``.
"""

from ml4t.backtest.data.features import FeatureProvider
from ml4t.backtest.data.feed import ChunkStream, PolarsDataFeed, validate
from ml4t.backtest.data.storage import write_dataset
from ml4t.backtest.data.validation import (
    CleaningAction,
    DataCleaningWarning,
    Finding,
    ValidationReport,
)

__all__ = [
    "ChunkStream",
    "CleaningAction",
    "DataCleaningWarning",
    "FeatureProvider",
    "Finding",
    "PolarsDataFeed",
    "ValidationReport",
    "validate",
    "write_dataset",
]
