"""The progress bar of long runs: a tqdm bar in bars (rows) per second, on stderr.

:meth:`Backtest.run` uses :func:`progress_bar`: with ``progress=None`` a bar is shown only when
stderr is a terminal, ``True`` forces it (to any stream), ``False`` switches it off. The engine
calls the returned callback with the number of rows processed about ten times a second and once
at the end, so the bar costs a few Python calls a second whatever the size of the run.

Example:
    >>> import io
    >>> stream = io.StringIO()
    >>> with progress_bar(1_000, True, file=stream) as update:
    ...     update(400)
    ...     update(1_000)
    >>> "1.00k/1.00k" in stream.getvalue()
    True
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from tqdm import tqdm

from ml4t.backtest.errors import ConfigError

__all__ = ["ProgressCallback", "progress_bar", "wants_progress"]

ProgressCallback = Callable[[int], None]
"""Called by the engine with the cumulative number of rows (bars) processed."""


def wants_progress(progress: bool | None, stream: IO[str] | None = None) -> bool:
    """Resolves ``Backtest.run``'s ``progress`` argument: ``None`` means "when ``stream``
    (default ``sys.stderr``) is a terminal".

    Raises:
        ConfigError: if ``progress`` is not ``True``, ``False`` or ``None``.
    """
    if progress is None:
        stream = sys.stderr if stream is None else stream
        isatty = getattr(stream, "isatty", None)
        try:
            return bool(isatty()) if isatty is not None else False
        except (ValueError, OSError):  # closed or detached stream
            return False
    if isinstance(progress, bool):
        return progress
    raise ConfigError(f"progress: expected True, False or None, got {progress!r}")


class _Updater:
    """Turns the engine's cumulative row counts into tqdm increments."""

    __slots__ = ("bar", "done")

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.done = 0

    def __call__(self, rows: int) -> None:
        if rows > self.done:
            self.bar.update(rows - self.done)
            self.done = rows


@contextmanager
def progress_bar(
    total: int,
    progress: bool | None = None,
    *,
    file: IO[str] | None = None,
    desc: str = "backtest",
) -> Iterator[ProgressCallback | None]:
    """A context giving the engine's progress callback, or ``None`` when no bar is wanted.

    Args:
        total: rows (bars) in the run.
        progress: ``None`` = a bar only when ``file`` is a terminal; ``True`` = always;
            ``False`` = never.
        file: where to draw the bar (default ``sys.stderr`` at the time of the call).
        desc: the bar's label.

    The bar is closed when the context exits, also on an error or interruption.
    """
    stream = sys.stderr if file is None else file
    if not wants_progress(progress, stream):
        yield None
        return
    bar = tqdm(
        total=total,
        unit="bars",
        unit_scale=True,
        desc=desc,
        file=stream,
        dynamic_ncols=True,
        mininterval=0.1,
        smoothing=0.3,
    )
    try:
        yield _Updater(bar)
    finally:
        bar.close()
