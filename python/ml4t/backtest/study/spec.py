"""The ``sweep:`` section of a config file, as ``ml4t-backtest sweep CONFIG`` reads it::

    sweep:
      grid:                      # every combination
        k: [5, 10, 25]           # a strategy parameter (strategy.params.k)
        commission.rate: [0.0005, 0.001]   # a dotted field of the config
      executor: auto             # auto | threads | processes | ray
      workers: 2                 # default: every CPU
      cache: sweep-cache         # resumable; relative to the config file
      keep: metrics              # metrics | equity | all
      metric: sharpe             # ranks the report and the printed best trial

The rest of the file is a normal config (``data``, ``strategy``, costs, ``risk``, ``output``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictInt

from ml4t.backtest._models import ValidatedModel


class SweepSpec(ValidatedModel):
    """The ``sweep:`` section (see the module doc)."""

    grid: dict[str, list[Any]] = Field(min_length=1)
    executor: Literal["auto", "threads", "processes", "ray"] = "auto"
    workers: StrictInt | None = Field(default=None, ge=1)
    cache: str | None = None
    keep: Literal["metrics", "equity", "all"] = "metrics"
    metric: str = "sharpe"
    batch_size: StrictInt | None = Field(default=None, ge=1)

    @classmethod
    def error_prefix(cls) -> str:
        return "sweep"
