"""Custom slippage models written in Python.

Subclass :class:`SlippageModel`, implement :meth:`SlippageModel.price`, select it with
``BacktestConfig(slippage={"model": "custom"})`` and pass an instance as
``Backtest(feed, strategy, config=config, slippage_model=MyModel())``. The engine calls
``price`` once for every market-like fill (market, market-on-close, stop, trailing stop,
margin-call liquidation); limit fills never slip. This is the slower path: each fill costs one
Python call and one ``dict``, and a run with a built-in strategy takes the GIL for it. The
built-in models (``fixed``, ``percent``, ``spread``, ``volume_share``, ``sqrt_impact``) run
entirely in Rust.

The returned price must be finite and > 0; the engine then clamps it into the bar's
``[low, high]`` range and records ``reference_price`` and the ``slippage`` cost
(``|price - reference| * quantity``) on the fill, separately from commission. An exception
raised in ``price`` stops the run as :class:`~ml4t.backtest.errors.StrategyError` with the
original exception as ``__cause__``.

Example:
    >>> from ml4t.backtest import Backtest, BacktestConfig, PolarsDataFeed, SignalStrategy
    >>> from ml4t.backtest.slippage import SlippageModel
    >>> from ml4t.backtest.synthetic import make_bars
    >>> class OneCent(SlippageModel):
    ...     def price(self, side, quantity, reference, bar):
    ...         return reference + 0.01 if side == "buy" else reference - 0.01
    >>> feed = PolarsDataFeed(make_bars(n_assets=2, n_bars=50, seed=1))
    >>> config = BacktestConfig(slippage={"model": "custom"})
    >>> result = Backtest(
    ...     feed, SignalStrategy("signal", quantity=10), config=config, slippage_model=OneCent()
    ... ).run(progress=False)
    >>> bool((result.fills["slippage"] >= 0).all())
    True
"""

from __future__ import annotations


class SlippageModel:
    """Base class of a custom Python slippage model; override :meth:`price`."""

    def price(self, side: str, quantity: float, reference: float, bar: dict[str, float]) -> float:
        """The fill price before it is clamped into the bar.

        Args:
            side: ``"buy"`` or ``"sell"``.
            quantity: shares to fill (absolute; after the volume-participation cap).
            reference: the price before slippage (the open, the close or a stop level).
            bar: the asset's bar: ``ts`` (int, ns UTC), ``asset_id`` (int), ``asset`` (name),
                ``open``, ``high``, ``low``, ``close``, ``volume`` and every feature column.

        Returns:
            The fill price (finite, > 0).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement price()")


__all__ = ["SlippageModel"]
