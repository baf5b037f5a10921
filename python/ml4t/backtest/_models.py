"""Shared plumbing of the pydantic models (config sections and risk rules).

- :class:`ValidatedModel`: the one validated base. A model built on its own raises the
  library's error (``ConfigError``, ``RiskRuleError``) with every problem and its dotted
  location; a model nested inside another one lets the outermost model report, so a location
  reads in full (``risk[2].pct``, ``data.chunk_rows``).
- The one duration grammar: Polars duration strings (``"15m"``, ``"1h30m"``, ``"1mo"``), read
  into ``(count, unit)`` pieces, with the length of the fixed units in nanoseconds.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, ClassVar, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from ml4t.backtest.errors import BacktestError, ConfigError, UnitsWarning, warn_user

VALIDATING: ContextVar[bool] = ContextVar("ml4t_model_validating", default=False)
"""True while a model is being validated inside another one (errors are collected by the
outermost model instead of being raised on the spot)."""

UNION_TAGS: set[str] = set()
"""Discriminator values of tagged unions (the risk rule ``type`` names): left out of error
locations, so that ``risk[2].pct`` reads as the user wrote it."""


_Model = TypeVar("_Model", bound="ValidatedModel")


def format_validation_error(
    err: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    """``location: message`` for each error, each location dotted from ``prefix``. An unknown
    key of ``model`` (or of a model nested in it) gets the nearest known field as a hint."""
    parts = []
    for item in err.errors():
        location = prefix
        for piece in item["loc"]:
            if isinstance(piece, int):
                location += f"[{piece}]"
            elif piece not in UNION_TAGS:
                location += f".{piece}"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and model is not None:
            message += _nearest_field(model, item["loc"])
        parts.append(f"{location.lstrip('.') or '<root>'}: {message}")
    return "; ".join(parts)


def _nearest_field(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the unknown key ``loc[-1]``, or nothing."""
    fields = _fields_at(model, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), sorted(fields), n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fields_at(model: type[BaseModel], path: tuple[int | str, ...]) -> set[str]:
    """The field names of the models reached from ``model`` along ``path`` (list indexes and
    union tags skipped; a union contributes every member's fields)."""
    models = [model]
    for piece in path:
        if isinstance(piece, int) or piece in UNION_TAGS:
            continue
        reached: list[type[BaseModel]] = []
        for current in models:
            info = current.model_fields.get(piece)
            if info is not None:
                reached.extend(_models_in(info.annotation))
        models = reached
    return {name for current in models for name in current.model_fields}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


@contextmanager
def _outermost(
    error: type[BacktestError], prefix: str, model: type[BaseModel] | None = None
) -> Iterator[None]:
    """Marks the models validated inside as nested and turns their collected errors into one
    ``error``."""
    token = VALIDATING.set(True)
    try:
        yield
    except ValidationError as err:
        raise error(format_validation_error(err, prefix=prefix, model=model)) from None
    finally:
        VALIDATING.reset(token)


class ValidatedModel(BaseModel):
    """A frozen model whose invalid values raise :attr:`error_type` naming their location (dotted
    from :meth:`error_prefix`), instead of pydantic's ``ValidationError``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_type: ClassVar[type[BacktestError]] = ConfigError
    """The exception raised for invalid values."""

    @classmethod
    def error_prefix(cls) -> str:
        """Where the locations of a model built on its own start (nothing by default)."""
        return ""

    def __init__(self, *args: Any, **data: Any) -> None:
        if args:
            fields = [f for f in type(self).model_fields if f not in ("type", "assets")]
            first = fields[0] if fields else "value"
            location = self.error_prefix() or type(self).__name__
            raise self.error_type(
                f"{location}: positional: {type(self).__name__} takes its parameters by "
                f"keyword; did you mean {type(self).__name__}({first}={args[0]!r})?"
            )
        if VALIDATING.get():
            # Nested inside another model's validation: let pydantic collect the errors with
            # their full location; the outermost model converts them.
            super().__init__(**data)
            return
        with _outermost(self.error_type, self.error_prefix(), type(self)):
            super().__init__(**data)

    @classmethod
    def validated(cls: type[_Model], data: Mapping[str, Any], *, prefix: str) -> _Model:
        """The model built from ``data`` as the section ``prefix`` of a larger one: a bad value
        reads ``prefix.field: ...``."""
        with _outermost(cls.error_type, prefix, cls):
            return cls(**data)


def warn_units(message: str) -> None:
    """Warns once per distinct message (Python's default filter) with :class:`UnitsWarning`."""
    warn_user(message, UnitsWarning)


_DURATION_PIECE = re.compile(r"(\d+)(ns|us|ms|mo|s|m|h|d|w|q|y)")

UNIT_NS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3_600 * 10**9,
    "d": 86_400 * 10**9,
    "w": 7 * 86_400 * 10**9,
}
"""Nanoseconds per fixed-length duration unit (``mo``, ``q`` and ``y`` are calendar units)."""


def duration_pieces(text: str) -> list[tuple[int, str]] | None:
    """The ``(count, unit)`` pieces of a Polars duration string (``"1h30m"`` ->
    ``[(1, "h"), (30, "m")]``), or ``None`` when ``text`` is not one."""
    pieces = _DURATION_PIECE.findall(text)
    if not pieces or "".join(n + u for n, u in pieces) != text:
        return None
    return [(int(n), u) for n, u in pieces]


def check_duration(value: str) -> str:
    """``value`` when it is a Polars duration string, else a ``ValueError`` for a validator."""
    if duration_pieces(value) is None:
        raise ValueError(
            f"'{value}' is not a Polars duration (e.g. '1d', '15m', '1mo', '1w', '1h30m')"
        )
    return value


def timedelta_text(value: timedelta) -> str:
    """A ``timedelta`` as a duration string in whole microseconds (``"90000000us"``)."""
    return f"{value // timedelta(microseconds=1)}us"
