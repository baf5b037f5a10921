"""The results wing: what a run produced, as frames, figures and a report.

- :mod:`~ml4t.backtest.results.result`: :class:`BacktestResult` (the engine's Arrow records as
  Polars frames, metrics access, save/load, the report as a lazy accessor);
- :mod:`~ml4t.backtest.results.positions`: positions sampled from the fills;
- :mod:`~ml4t.backtest.results.metrics`: the performance metrics, pure functions of frames;
- :mod:`~ml4t.backtest.results.report`: the HTML tearsheet, a view of a result.
"""

from ml4t.backtest.results.result import BacktestResult

__all__ = ["BacktestResult"]
