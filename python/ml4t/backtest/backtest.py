"""``Backtest``: ties a feed, a strategy and a config together and runs the Rust engine; the
one room where feed, strategy, config and ``_core`` meet (with :class:`_BatchDriver`, which
hands a Python strategy each timestamp's rows as a :class:`TimestampBatch`).

Example:
    >>> from ml4t.backtest import Backtest, PolarsDataFeed, SignalStrategy
    >>> from ml4t.backtest.synthetic import make_bars
    >>> feed = PolarsDataFeed(make_bars(n_assets=2, n_bars=50, seed=1))
    >>> result = Backtest(feed, SignalStrategy("signal", quantity=10)).run(progress=False)
    >>> result.equity.height
    50
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy.typing as npt
import polars as pl

import ml4t.backtest._core as _core
from ml4t.backtest._engine_spec import UniverseSpec
from ml4t.backtest.config import BacktestConfig
from ml4t.backtest.data import ChunkStream, PolarsDataFeed
from ml4t.backtest.data.flows import read_flows
from ml4t.backtest.data.fx import engine_currencies
from ml4t.backtest.data.sessions import (
    calendar_sessions,
    session_index,
    sessions_per_year,
    user_sessions,
)
from ml4t.backtest.errors import (
    ConfigError,
    DataValidationError,
    DelistingWarning,
    MarginWarning,
    RiskRuleError,
    RuinWarning,
    warn_user,
)
from ml4t.backtest.progress import progress_bar
from ml4t.backtest.provenance import strategy_config, strategy_record, versions
from ml4t.backtest.results import BacktestResult
from ml4t.backtest.risk import BuiltinRule, RiskRule, check_rules, rule_spec
from ml4t.backtest.slippage import SlippageModel
from ml4t.backtest.strategies import BuiltinStrategy, SignalStrategy, TopKStrategy
from ml4t.backtest.strategy import Strategy, TimestampBatch

if TYPE_CHECKING:
    from ml4t.backtest._core import Context


class Backtest:
    """One backtest: ``Backtest(feed, strategy, config=...).run()``.

    Args:
        feed: the validated data.
        strategy: a :class:`Strategy` subclass instance, or a built-in
            (:class:`SignalStrategy`, :class:`TopKStrategy`) that runs entirely in Rust.
        config: a :class:`BacktestConfig` (defaults when ``None``).
        slippage_model: a :class:`~ml4t.backtest.slippage.SlippageModel` subclass instance,
            used when ``config.slippage.model`` is ``"custom"`` (and only then).
        risk: risk rules (see :mod:`ml4t.backtest.risk`): built-in rules, which run in Rust,
            and :class:`~ml4t.backtest.risk.RiskRule` subclass instances. They run after the
            rules of ``config.risk``, in order.
        search_path: a directory searched first when importing the custom rules of
            ``config.risk``, and against which a relative ``config.data.flows`` is resolved
            (the CLI passes the config file's directory).
        folds: what a walk-forward or CPCV study hands a Python strategy: ``(start, model,
            fold)`` triples in time order, ``start`` in engine nanoseconds; before the first
            timestamp at or after each ``start`` the strategy's ``on_fold(model, fold)`` is
            called (see :mod:`ml4t.backtest.study`).
        flows: capital flows, a frame (or anything the feed reads) of ``timestamp`` and
            ``amount`` (+ deposit, - withdrawal), checked by
            :func:`~ml4t.backtest.data.flows.read_flows`. Each changes cash at the start of the
            first timestamp at or after its date, before that timestamp's fills; returns and
            return-based metrics become time-weighted (see ``docs/semantics.md``, "Capital
            flows"); ``account.on_withdrawal`` says what a withdrawal beyond the cash does.
            Without it, ``config.data.flows`` (a path; relative to ``search_path``) is read.
        sessions: a session frame of your own (``session`` Date, ``open``, ``close``
            Datetimes), instead of ``config.calendar``: see :mod:`ml4t.backtest.data.sessions`.

    Raises:
        ConfigError: a bad argument; ``slippage.model: 'custom' ...`` without a
            ``slippage_model`` or ``slippage_model: ...`` with another model; a rule of
            ``config.risk`` that names a feature or asset the feed lacks.
        RiskRuleError: a rule of ``risk`` with a bad parameter, or naming a feature or asset
            the feed lacks (raised here, before the run).
        DataValidationError: a bad ``flows`` frame (``flows.<column>: rule: ...``).
    """

    folds: list[tuple[int, Any, Any]]
    """The ``folds`` given (empty without)."""

    def __init__(
        self,
        feed: PolarsDataFeed,
        strategy: Strategy | BuiltinStrategy,
        config: BacktestConfig | None = None,
        slippage_model: SlippageModel | None = None,
        risk: Sequence[BuiltinRule | RiskRule] | None = None,
        search_path: str | None = None,
        folds: Sequence[tuple[int, Any, Any]] | None = None,
        flows: Any = None,
        sessions: Any = None,
    ) -> None:
        if not isinstance(feed, PolarsDataFeed):
            raise ConfigError(f"feed: expected a PolarsDataFeed, got {type(feed).__name__}")
        if not isinstance(strategy, (Strategy, SignalStrategy, TopKStrategy)):
            raise ConfigError(
                f"strategy: expected a Strategy subclass instance or a built-in strategy, got "
                f"{type(strategy).__name__}"
            )
        if isinstance(strategy, Strategy):
            _refuse_async(strategy, "strategy")
        for rule in risk or []:
            if isinstance(rule, RiskRule):
                _refuse_async(rule, f"risk.{type(rule).__name__}")
        self.feed = feed
        self.strategy = strategy
        self.folds = list(folds or [])
        if self.folds and not isinstance(strategy, Strategy):
            raise ConfigError(
                f"strategy: {type(strategy).__name__} is a built-in strategy, which has no "
                "on_fold hook to receive a model; use a Strategy subclass"
            )
        starts = [start for start, _, _ in self.folds]
        if any(not isinstance(s, int) for s in starts) or starts != sorted(starts):
            raise ConfigError("folds: starts must be engine nanoseconds (int) in time order")
        self.config = config or BacktestConfig()
        custom = self.config.slippage.model == "custom"
        if slippage_model is not None:
            if not isinstance(slippage_model, SlippageModel):
                raise ConfigError(
                    "slippage_model: expected a SlippageModel subclass instance, got "
                    f"{type(slippage_model).__name__}"
                )
            if type(slippage_model).price is SlippageModel.price:
                raise ConfigError(
                    f"slippage_model: {type(slippage_model).__name__} does not implement price()"
                )
            if not custom:
                raise ConfigError(
                    f"slippage_model: given, but slippage.model is "
                    f"'{self.config.slippage.model}'; set slippage={{'model': 'custom'}}"
                )
        elif custom:
            raise ConfigError(
                "slippage.model: 'custom' needs a SlippageModel instance: "
                "Backtest(..., slippage_model=MyModel())"
            )
        self.slippage_model = slippage_model
        self.session_info: dict[str, Any] | None = None
        if sessions is not None or self.config.calendar is not None:
            self.feed, self.session_info = _apply_sessions(self.feed, self.config, sessions)
        if flows is None and self.config.data is not None and self.config.data.flows:
            flows = _config_path(self.config.data.flows, search_path)
        self.flows = None if flows is None else _flows_table(flows, self.feed)
        # Checked now (the account's base currency meets the feed's instruments and rates).
        engine_currencies(
            self.feed.fx,
            self.feed.currencies,
            list(self.feed.assets),
            self.config.account.base_currency,
        )
        extra = list(risk or [])
        if self.session_info is None:
            counting = [r for r in [*self.config.risk, *extra] if getattr(r, "max_sessions", None)]
            if counting:
                raise ConfigError(
                    "risk: time_exit.max_sessions counts trading sessions: the run needs a "
                    "calendar (BacktestConfig(calendar=...) or Backtest(..., sessions=frame))"
                )
        self.risk_rules = self._check_risk(extra, search_path)
        # The result's config is the fully resolved one: it lists the built-in rules given here
        # too (Python rule instances are named in the manifest's run info instead).
        builtins = [rule for rule in extra if isinstance(rule, BuiltinRule)]
        update: dict[str, Any] = {}
        if builtins:
            update["risk"] = [*self.config.risk, *builtins]
        if self.config.strategy is None:
            # A Python-API run records its strategy like a config file would name it.
            update["strategy"] = strategy_config(strategy)
        self.resolved_config = self.config.model_copy(update=update) if update else self.config
        self.python_rules = [
            f"{type(rule).__module__}:{type(rule).__qualname__}"
            for rule in extra
            if isinstance(rule, RiskRule)
        ]

    def _check_risk(
        self, extra: list[BuiltinRule | RiskRule], search_path: str | None
    ) -> list[Any]:
        """The engine's rule specs: config rules first (errors as ``ConfigError``), then
        ``extra`` (errors as ``RiskRuleError``); every feature, asset and parameter checked."""
        features = self.feed.feature_columns
        assets = self.feed.assets
        try:
            check_rules(self.config.risk, features, assets)
            configured = [rule_spec(rule, search_path) for rule in self.config.risk]
            _core.check_risk_rules([s for s in configured if isinstance(s, dict)], assets)
        except RiskRuleError as err:
            raise ConfigError(str(err)) from None
        check_rules(extra, features, assets, where="risk")
        specs = [rule_spec(rule) for rule in extra]
        _core.check_risk_rules([s for s in specs if isinstance(s, dict)], assets)
        return configured + specs

    def _universe(self) -> UniverseSpec:
        """The feed's universe (asset names by code, time zone, delistings), as the engine
        reads it.

        Raises:
            DataValidationError: ``asset: delisted: ...`` with ``on_delisting="error"`` when an
                asset's data ends before the run's.
        """
        universe = self.feed.universe
        spec: UniverseSpec = {
            "names": list(universe.assets),
            "time_zone": universe.time_zone or None,
        }
        if self.feed.instruments is not None:
            spec["instruments"] = self.feed.instruments
        currencies = engine_currencies(
            self.feed.fx,
            self.feed.currencies,
            list(universe.assets),
            self.config.account.base_currency,
        )
        if currencies is not None:
            spec["currencies"], spec["asset_currency"], spec["fx"] = currencies
        if self.session_info is not None:
            spec["session_closes"] = self.session_info["session_closes"]
        execution = self.config.execution
        membership = self.feed.membership
        if membership is not None:
            spec["membership"] = membership.to_dict(as_series=False)
            spec["reject_non_members"] = execution.on_non_member == "reject"
        if execution.on_delisting == "hold":
            return spec
        delisted = self.feed.delistings(execution.delisting_gap)
        if not any(t is not None for t in delisted):
            return spec
        if execution.on_delisting == "error":
            ended = [
                f"{name} (last bar {universe.to_datetime(t)})"
                for name, t in zip(universe.assets, delisted, strict=True)
                if t is not None
            ]
            raise DataValidationError(
                f"asset: delisted: {len(ended)} asset(s) end before the data does, with no bar in "
                f"its last {execution.delisting_gap} timestamps: {', '.join(ended[:5])}"
                f"{' ...' if len(ended) > 5 else ''}; execution.on_delisting='close' closes "
                "their positions at their last bar, 'hold' keeps them marked at their last close"
            )
        spec["delisted_at"] = delisted
        returns = self.feed.delisting_returns
        if any(r is not None for r in returns):
            spec["delisting_return"] = returns
        return spec

    def run(self, progress: bool | None = None) -> BacktestResult:
        """Runs the backtest and returns its result.

        Args:
            progress: show a progress bar (tqdm, in bars per second) on stderr. ``None`` (the
                default) shows it only when stderr is a terminal; ``True`` forces it, ``False``
                switches it off.

        Raises:
            ConfigError: if ``progress`` is not ``True``, ``False`` or ``None``.
        """
        engine_config = self.config.engine_dict()
        if self.slippage_model is not None:
            engine_config["slippage"]["custom"] = self.slippage_model
        universe = self._universe()
        risk = self.risk_rules or None
        started_at = datetime.now(timezone.utc)
        start = time.perf_counter()
        data = self.feed.engine_data()
        with progress_bar(len(self.feed), progress) as callback:
            if isinstance(self.strategy, Strategy):
                mode = self.strategy.call_mode()
                target: object = (
                    _BatchDriver(
                        self.strategy,
                        self.feed,
                        data if isinstance(data, ChunkStream) else self.feed.engine_pages,
                        self.folds,
                    )
                    if mode == "batch"
                    else _BarFolds(self.strategy, self.folds)
                    if self.folds
                    else self.strategy
                )
                raw = _core.run_python(
                    data,
                    universe,
                    engine_config,
                    target,
                    mode,
                    self.strategy.wants_fills(),
                    progress=callback,
                    wants_orders=self.strategy.wants_orders(),
                    risk=risk,
                    feature_groups=self.feed.features.groups(),
                    actions=self.feed.actions,
                    flows=self.flows,
                )
            else:
                raw = _core.run_builtin(
                    data,
                    universe,
                    engine_config,
                    self.strategy.spec(),
                    progress=callback,
                    risk=risk,
                    feature_groups=self.feed.features.groups(),
                    actions=self.feed.actions,
                    flows=self.flows,
                )
        run_info: dict[str, Any] = {
            "started_at": started_at.isoformat(),
            "duration_seconds": time.perf_counter() - start,
        }
        if self.python_rules:
            run_info["python_risk_rules"] = self.python_rules
        if self.session_info is not None:
            run_info["sessions"] = {
                k: v for k, v in self.session_info.items() if k != "session_closes"
            }
            run_info["sessions_per_year"] = self.session_info["sessions_per_year"]
        run_info["strategy"] = strategy_record(self.strategy)
        run_info["risk_rules"] = [
            *(rule.type for rule in self.resolved_config.risk),
            *self.python_rules,
        ]
        run_info["versions"] = versions()
        result = BacktestResult(raw, self.feed, self.resolved_config, run_info=run_info)
        warn_outcome(result, instruments=self.feed.instruments is not None)
        return result


def _apply_sessions(
    feed: PolarsDataFeed, config: BacktestConfig, sessions: Any
) -> tuple[PolarsDataFeed, dict[str, Any]]:
    """The feed checked against the run's sessions (``config.calendar`` or ``sessions``) and
    what the result records of them: the calendar, its sessions per year and the bars dropped
    (``outside_sessions="drop"``: an in-memory feed comes back without them).

    Raises:
        ConfigError: both a calendar and a session frame, an unknown calendar, or ``drop`` on a
            streaming feed.
        DataValidationError: a bad session frame, or (``raise``) bars outside every session.
    """
    if sessions is not None and config.calendar is not None:
        raise ConfigError(f"sessions: given with calendar={config.calendar!r}; use one of them")
    ts = (
        feed.frame.get_column("ts")
        if not feed.streaming
        else pl.concat([c.get_column("ts") for c in feed.iter_chunks()])
    ).unique(maintain_order=True)
    if ts.len() == 0:
        raise DataValidationError("ts: no data: the feed is empty")
    if sessions is None:
        assert config.calendar is not None
        first, last = (feed.to_datetime(int(ts[i])).date() for i in (0, -1))
        table = calendar_sessions(config.calendar, first, last)
        name = config.calendar
        span: tuple[date, date] | None = (date(first.year, 1, 1), date(last.year, 12, 31))
    else:
        table = user_sessions(sessions)
        name, span = "user", None
    index = session_index(ts, table, feed.time_zone)
    outside = ts.filter(index.is_null())
    closes = (
        pl.DataFrame({"ts": ts, "session": index})
        .drop_nulls()
        .group_by("session", maintain_order=True)
        .agg(pl.col("ts").max())
        .get_column("ts")
        .sort()
    )
    info: dict[str, Any] = {
        "calendar": name,
        "sessions_per_year": sessions_per_year(table, span),
        "sessions": int(index.drop_nulls().n_unique()),
        "dropped_timestamps": 0,
        "dropped_bars": 0,
    }
    info["session_closes"] = [int(t) for t in closes]
    if outside.len() == 0:
        return feed, info
    shown = ", ".join(str(feed.to_datetime(int(t))) for t in outside.head(3))
    if config.outside_sessions == "raise":
        raise DataValidationError(
            f"ts: outside_sessions: {outside.len()} timestamp(s) fall outside every session of "
            f"calendar {name!r} (first: {shown}); outside_sessions='drop' drops their bars"
        )
    if feed.streaming:
        raise ConfigError(
            "outside_sessions: 'drop' needs an in-memory feed (a streaming feed would read its "
            "data twice); drop those bars from the source or use outside_sessions='raise'"
        )
    kept = feed.frame.filter(~pl.col("ts").is_in(outside.implode()))
    info["dropped_timestamps"] = outside.len()
    info["dropped_bars"] = feed.frame.height - kept.height
    return feed.with_frame(kept), info


def _config_path(path: str, base: str | None) -> str:
    """``path`` from a config, resolved against ``base`` when it is relative."""
    if base is None or Path(path).is_absolute():
        return path
    return str(Path(base) / path)


def _flows_table(flows: Any, feed: PolarsDataFeed) -> pl.DataFrame:
    """The engine's flows table, checked against the feed's time zone and, for an in-memory
    feed, its first and last timestamps (a streaming feed's are checked by the engine)."""
    bounds = None
    if not feed.streaming:
        ts = feed.frame.get_column("ts")
        if ts.len():
            bounds = (int(ts[0]), int(ts[-1]))
    return read_flows(flows, universe=feed.universe, bounds=bounds)


def warn_outcome(result: BacktestResult, instruments: bool = False) -> None:
    """One :class:`MarginWarning` when the account refused orders for want of cash or margin,
    one :class:`RuinWarning` when equity reached zero (each says how many and where to look)."""
    # Counted on the engine's codes: a run that warns of nothing builds no frame here.
    unaffordable = result._count("rejected_orders", "reason", _UNAFFORDABLE)
    if unaffordable:
        account = result.config.account
        if account.type == "cash":
            limit, unlimited = "the cash it had", ""
        else:
            limit = f"initial margin {account.initial_margin} of gross exposure"
            if instruments:
                limit += " (or of an instrument's own margin)"
            unlimited = ", account.initial_margin=None lends without limit"
        warn_user(
            f"account: {unaffordable} order(s) or parts were rejected at fill time for want of "
            f"{limit} (see result.rejected_orders; account.on_insufficient='resize' fills what "
            f"is affordable{unlimited})",
            MarginWarning,
        )
    delisted = result._count("trades", "exit_reason", ("delisted",))
    cancelled = result._count("rejected_orders", "reason", ("delisted",))
    if delisted or cancelled:
        warn_user(
            f"asset: delisted: {delisted} position(s) closed at the last bar of an asset whose "
            f"data ends before the run's, and {cancelled} order(s) cancelled or refused "
            "(execution.on_delisting; exit reason and rejection reason 'delisted')",
            DelistingWarning,
        )
    if result._any_ruin():
        ruined = result.equity.filter(pl.col("equity") <= 0.0)
        refused = result._count("rejected_orders", "reason", ("ruined",))
        when = ruined.get_column("timestamp")[0]
        warn_user(
            f"account: ruined: equity reached {ruined.get_column('equity')[0]:.6g} at {when}; "
            f"open positions were liquidated at the next fill and {refused} order(s) refused "
            "from then on (reason 'ruined')",
            RuinWarning,
        )


_UNAFFORDABLE = ("insufficient_cash", "insufficient_margin")

_CALLBACKS = (
    "on_timestamp_batch",
    "on_market_data",
    "on_start",
    "on_fill",
    "on_order",
    "on_end",
    "evaluate",
    "evaluate_batch",
    "check_order",
)


def _refuse_async(obj: object, location: str) -> None:
    """The engine calls strategies and rules synchronously: an ``async def`` callback would
    return an un-awaited coroutine and do nothing, so it is refused up front."""
    for name in _CALLBACKS:
        method = getattr(obj, name, None)
        if method is not None and (
            inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method)
        ):
            raise ConfigError(
                f"{location}.{name}: async: the engine calls it synchronously, so an "
                "'async def' would never run; define it with plain 'def'"
            )


class _BatchDriver:
    """Called by the engine once per timestamp; builds the batch view and calls the user.

    The numpy views are taken once per chunk, and the engine's row indexes are relative to
    it: for an in-memory feed, once per page of :attr:`PolarsDataFeed.engine_pages` (the
    engine moves to the next page when the timestamp passes the current page's last); when
    it streams, whenever this run's :class:`ChunkStream` hands the engine a new chunk (its
    ``serial`` changes; the chunk is its ``current``). The driver reads the chunk from its own
    run's stream, never from the feed, so concurrent runs over one feed are safe.
    """

    def __init__(
        self,
        strategy: Strategy,
        feed: PolarsDataFeed,
        data: list[pl.DataFrame] | pl.DataFrame | ChunkStream,
        folds: Sequence[tuple[int, Any, Any]] = (),
    ) -> None:
        """``data`` is the feed's engine pages (or a frame the engine reads whole), or the
        run's :class:`ChunkStream` when it streams; ``folds`` the models to hand
        ``strategy.on_fold`` (see :class:`Backtest`)."""
        self.strategy = strategy
        self._folds = list(folds)
        self._next_fold = 0
        self._fold_at = self._folds[0][0] if self._folds else None
        # A frame handed to the engine whole is exported as one batch: a single page.
        self._data = [data] if isinstance(data, pl.DataFrame) else data
        self._universe = feed.universe
        self._serial = -1
        self._page = -1  # the engine page loaded, and its last timestamp
        self._page_last_ts = 0
        self._frame: pl.DataFrame | None = None
        self._columns: dict[str, npt.NDArray[Any]] = {}
        self._context: Context | None = None
        self._user_call = strategy.on_timestamp_batch
        self._to_datetime = feed.to_datetime

    def _chunk(self, ts: int) -> pl.DataFrame:
        """The chunk the engine is in at ``ts``, its numpy views loaded when it is new."""
        data = self._data
        if isinstance(data, list):
            frame = self._frame
            if frame is None or ts > self._page_last_ts:
                self._page += 1
                while int(data[self._page].get_column("ts")[-1]) < ts:  # whole timestamps
                    self._page += 1
                frame = data[self._page]
                self._page_last_ts = int(frame.get_column("ts")[-1])
                self._load(frame)
            return frame
        frame = self._frame
        if frame is None or data.serial != self._serial:
            if data.current is None:  # the engine only calls between chunks it has read
                raise RuntimeError("on_timestamp called outside a chunk")
            frame = data.current
            self._serial = data.serial
            self._load(frame)
        return frame

    def _load(self, frame: pl.DataFrame) -> None:
        self._frame = frame
        self._columns = {name: frame[name].to_numpy() for name in frame.columns}

    def on_start(self, context: Context) -> None:
        self._context = context
        self.strategy.on_start(context)

    def on_timestamp(self, start: int, end: int, ts: int) -> None:
        context = self._context
        if context is None:  # the engine always calls on_start first
            raise RuntimeError("on_timestamp called before on_start")
        if self._fold_at is not None and ts >= self._fold_at:
            self._fold_at = _hand_folds(self.strategy, self._folds, self, ts)
        frame = self._chunk(ts)
        batch = TimestampBatch(self._universe, self._columns, start, end, frame, context)
        self._user_call(self._to_datetime(ts), batch, context)

    def on_end(self, context: Context) -> None:
        self.strategy.on_end(context)


def _hand_folds(
    strategy: Strategy, folds: list[tuple[int, Any, Any]], owner: Any, ts: int
) -> int | None:
    """Calls ``on_fold`` for the folds due at ``ts`` (the last of several due at once gets the
    model: its test window is the one that starts here); returns the next start or ``None``."""
    index = owner._next_fold
    due = index
    while due + 1 < len(folds) and folds[due + 1][0] <= ts:
        due += 1
    _, model, fold = folds[due]
    strategy.on_fold(model, fold)
    owner._next_fold = due + 1
    return folds[due + 1][0] if due + 1 < len(folds) else None


class _BarFolds:
    """A per-bar strategy with fold models to hand over: the engine calls this object, which
    calls ``on_fold`` before the first bar of each fold and forwards everything else."""

    def __init__(self, strategy: Strategy, folds: Sequence[tuple[int, Any, Any]]) -> None:
        self.strategy = strategy
        self._folds = list(folds)
        self._next_fold = 0
        self._fold_at: int | None = self._folds[0][0] if self._folds else None
        self._user_call = strategy.on_market_data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.strategy, name)

    def on_start(self, context: Context) -> None:
        self.strategy.on_start(context)

    def on_market_data(self, event: Any, context: Context) -> None:
        if self._fold_at is not None:
            ts = event.timestamp_ns
            if ts >= self._fold_at:
                self._fold_at = _hand_folds(self.strategy, self._folds, self, ts)
        self._user_call(event, context)

    def on_end(self, context: Context) -> None:
        self.strategy.on_end(context)
