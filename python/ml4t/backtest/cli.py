"""The ``ml4t-backtest`` command line.

``ml4t-backtest run CONFIG``
    Runs the backtest a YAML or JSON config describes (its ``data``, ``strategy`` and
    ``output`` sections), shows a progress bar on a terminal, prints the metrics and writes the
    results directory.

``ml4t-backtest sweep CONFIG``
    Runs every trial of the config's ``sweep:`` section (a grid of strategy parameters and
    dotted config fields, the executor, workers, cache and what to keep; see
    :mod:`ml4t.backtest.study.spec`) with a progress bar over trials, prints the best trial and
    writes the table (``table.parquet``, ``sweep.json``) and ``report.html``.

``ml4t-backtest validate DATA``
    Checks every row of a Parquet/CSV file, glob or directory (or the data of a config file)
    and prints the validation report; exits 1 when a rule is broken.

Exit codes: 0 success, 1 a library error (bad data, bad config, strategy error, a file that
cannot be read or written) or failed validation, 2 bad command-line usage, 130 interrupted
(Ctrl-C). A user's mistake is one line on stderr, ``error: ErrorClass: location: rule: detail``;
``--traceback`` shows the whole Python traceback instead. Everything printed from the data
(asset names, values) has its control characters escaped, so a hostile name cannot drive the
terminal. Also runnable as ``python -m ml4t.backtest.cli``.

A config is code: a strategy ``module:Class`` (and a custom risk rule's import path) imports
that module, which runs whatever it contains. Run only configs you would run as scripts.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml4t.backtest.config import BacktestConfig, load_yaml
from ml4t.backtest.errors import BacktestError, ConfigError, panics_as_bugs

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def load_config(path: str | Path) -> BacktestConfig:
    """Loads a config file by its suffix (``.json``, else YAML)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"<file {file}>: no such config file")
    if file.suffix.lower() == ".json":
        return BacktestConfig.from_json(file)
    return BacktestConfig.from_yaml(file)


def _config_arguments(command: argparse.ArgumentParser, output: str, bar: str) -> None:
    """The arguments ``run`` and ``sweep`` share: CONFIG, ``-o DIR``, ``--report`` and the
    progress switches (``output`` and ``bar`` word their help)."""
    command.add_argument("config", metavar="CONFIG", help="path to a .yaml/.yml or .json config")
    command.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help=f"{output} (default: output.directory of the config, else ./output/<config name>)",
    )
    command.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write report.html (default: output.report of the config, which is true)",
    )
    switches = command.add_mutually_exclusive_group()
    switches.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help=f"always show {bar} (default: only on a terminal)",
    )
    switches.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show it"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ml4t-backtest",
        description="Rust-accelerated backtests of ML trading strategies.",
    )
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on an error, print the whole Python traceback instead of one line",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the backtest a config file describes",
        description=(
            "Run the backtest described by a YAML or JSON config (sections data, strategy, "
            "execution, commission, slippage, account, output). Prints the metrics and writes "
            "the results directory. Relative paths in the file are resolved against its "
            "directory, and a strategy 'module:Class' is imported from there too."
        ),
    )
    _config_arguments(run, "results directory", "the progress bar")
    run.set_defaults(func=_run)

    sweep = commands.add_parser(
        "sweep",
        help="run the sweep (many backtests) a config file describes",
        description=(
            "Run every trial of the sweep: section of a YAML or JSON config (its grid over "
            "strategy parameters and dotted config fields, executor, workers, cache, keep, "
            "metric); the rest of the file is the config each trial starts from. Prints the best "
            "trial and writes table.parquet, sweep.json and report.html. A cache makes it "
            "resumable: a rerun skips finished trials."
        ),
    )
    _config_arguments(sweep, "where to write", "the progress bar over trials")
    sweep.set_defaults(func=_sweep)

    check = commands.add_parser(
        "validate",
        help="check every row of a dataset and print the report",
        description=(
            "Check every row of DATA (a Parquet or CSV file, a glob, a hive-partitioned "
            "directory, or a config file whose data section is checked) and print the "
            "validation report. Exits 1 when a rule is broken."
        ),
    )
    check.add_argument("data", metavar="DATA", help="data path, glob or directory, or a config")
    check.add_argument("--signals", metavar="PATH", help="a signals dataset to join and check")
    check.add_argument("--timestamp-column", default="timestamp", metavar="NAME")
    check.add_argument("--asset-column", default=None, metavar="NAME")
    check.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        metavar="N",
        help="read in chunks of about N rows (bounded memory)",
    )
    check.add_argument(
        "--chunk-by", default=None, metavar="PERIOD", help="read in chunks of a period, e.g. 1mo"
    )
    check.add_argument(
        "--sort",
        choices=("sort", "raise"),
        default="sort",
        help="unsorted rows: sort them (default) or report them",
    )
    check.set_defaults(func=_validate)
    return parser


def _write_results(result: Any, out: Path) -> None:
    if hasattr(result, "save"):
        result.save(out)
        return
    out.mkdir(parents=True, exist_ok=True)  # pragma: no cover - older result objects
    for name in ("fills", "trades", "equity", "rejected_orders"):
        getattr(result, name).write_parquet(out / f"{name}.parquet")
    metrics = {k: (v if math.isfinite(v) else str(v)) for k, v in result.metrics.items()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    result.config.to_yaml(out / "config.yaml")


def _run(args: argparse.Namespace) -> int:
    from ml4t.backtest.backtest import Backtest
    from ml4t.backtest.data import PolarsDataFeed

    path = Path(args.config)
    base = path.resolve().parent
    config = _absolute_flows(load_config(path), base)
    if config.data is None:
        raise ConfigError("data: the config has no data section (data.prices is required)")
    if config.strategy is None:
        raise ConfigError("strategy: the config has no strategy section")
    feed = PolarsDataFeed.from_config(config.data, base)
    strategy = config.strategy.build(search_path=base)
    backtest = Backtest(feed, strategy, config=config, search_path=str(base))
    kwargs: dict[str, Any] = {}
    if "progress" in inspect.signature(backtest.run).parameters:
        kwargs["progress"] = args.progress
    result = backtest.run(**kwargs)
    _print(result.summary())
    if args.output:
        out = Path(args.output)
    elif config.output.directory:
        out = Path(config.output.directory)
        out = out if out.is_absolute() else base / out
    else:
        out = Path("output") / path.stem
    _write_results(result, out)
    write_report = config.output.report if args.report is None else args.report
    if write_report:
        result.report(out / "report.html")
    _print(f"results written to {out}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from ml4t.backtest.data import PolarsDataFeed
    from ml4t.backtest.study import Sweep, direction
    from ml4t.backtest.study.spec import SweepSpec

    path = Path(args.config)
    if not path.is_file():
        raise ConfigError(f"<file {path}>: no such config file")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"<file {path}>: not valid JSON: {err}") from None
    else:
        raw = load_yaml(text, f"<file {path}>") or {}
    if not isinstance(raw, dict) or "sweep" not in raw:
        raise ConfigError("sweep: the config has no sweep section (sweep.grid is required)")
    raw = dict(raw)
    spec = SweepSpec.validated(raw.pop("sweep") or {}, prefix="sweep")
    direction(spec.metric, where="sweep.metric")
    base = path.resolve().parent
    config = _absolute_flows(BacktestConfig.from_dict(raw), base)
    if config.data is None:
        raise ConfigError("data: the config has no data section (data.prices is required)")
    if config.strategy is None:
        raise ConfigError("strategy: the config has no strategy section")
    feed = PolarsDataFeed.from_config(config.data, base)
    section = config.strategy

    def strategy(**params: Any) -> Any:
        return section.model_copy(update={"params": {**section.params, **params}}).build(
            search_path=base
        )

    cache = None
    if spec.cache is not None:
        cache = Path(spec.cache) if Path(spec.cache).is_absolute() else base / spec.cache
    result = Sweep(feed, strategy, spec.grid, config=config).run(
        executor=None if spec.executor == "auto" else spec.executor,
        max_workers=spec.workers,
        cache=cache,
        keep=spec.keep,
        progress=args.progress,
        batch_size=spec.batch_size,
    )
    ok = int((result.table["status"] == "ok").sum())
    _print(f"{result.table.height} trials, {ok} ok ({result.info['cached']} from the cache)")
    if ok and spec.metric in result.metrics:
        best = result.best(spec.metric)
        assert isinstance(best, dict)
        chosen = ", ".join(f"{p}={best[p]!r}" for p in result.params)
        _print(f"best {spec.metric}: {best[spec.metric]:.6g} (trial {best['trial']}: {chosen})")
    if args.output:
        out = Path(args.output)
    elif config.output.directory:
        out = Path(config.output.directory)
        out = out if out.is_absolute() else base / out
    else:
        out = Path("output") / path.stem
    result.save(out)
    write_report = config.output.report if args.report is None else args.report
    if write_report and ok:
        result.report(out / "report.html", spec.metric)
    _print(f"results written to {out}")
    return 0


def _absolute_flows(config: BacktestConfig, base: Path) -> BacktestConfig:
    """``config`` with ``data.flows`` resolved against the config file's directory, so every
    backtest built from it (a sweep's workers included) reads the same file."""
    data = config.data
    if data is None or data.flows is None or Path(data.flows).is_absolute():
        return config
    flows = str(base / data.flows)
    return config.model_copy(update={"data": data.model_copy(update={"flows": flows})})


def _validate(args: argparse.Namespace) -> int:
    from ml4t.backtest.data import PolarsDataFeed, validate

    data = Path(args.data)
    if data.suffix.lower() in CONFIG_SUFFIXES and data.is_file():
        config = load_config(data)
        if config.data is None:
            raise ConfigError("data: the config has no data section")
        prices, options = PolarsDataFeed.config_options(config.data, data.resolve().parent)
        report = validate(prices, **options)
    else:
        report = validate(
            args.data,
            signals=args.signals,
            timestamp_column=args.timestamp_column,
            asset_column=args.asset_column,
            chunk_rows=args.chunk_rows,
            chunk_by=args.chunk_by,
            validation={"sort": args.sort},
        )
    _print(str(report))
    return 0 if report.ok else 1


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` with every control character but newline and tab escaped (``\\x1b``), so
    data printed to a terminal cannot move the cursor, set the title or change colours."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _print(text: str, *, error: bool = False) -> None:
    print(terminal_safe(text), file=sys.stderr if error else sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ml4t-backtest`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        with panics_as_bugs("ml4t-backtest"):
            code: int = args.func(args)
    except KeyboardInterrupt:
        if args.traceback:
            raise
        _print("error: interrupted", error=True)
        return 130
    except (BacktestError, OSError) as err:
        if args.traceback:
            traceback.print_exc()
        else:
            _print(f"error: {type(err).__name__}: {err}", error=True)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
