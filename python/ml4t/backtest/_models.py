"""Shared plumbing of the pydantic models (config sections and risk rules): the nesting flag
that lets the outermost model report every error with its full location, and the formatting
of those locations."""

from __future__ import annotations

from contextvars import ContextVar

from pydantic import ValidationError

VALIDATING: ContextVar[bool] = ContextVar("ml4t_model_validating", default=False)
"""True while a model is being validated inside another one (errors are collected by the
outermost model instead of being raised on the spot)."""

UNION_TAGS: set[str] = set()
"""Discriminator values of tagged unions (the risk rule ``type`` names): left out of error
locations, so that ``risk[2].pct`` reads as the user wrote it."""


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """``location: message`` for each error, each location dotted from ``prefix``."""
    parts = []
    for item in err.errors():
        location = prefix
        for piece in item["loc"]:
            if isinstance(piece, int):
                location += f"[{piece}]"
            elif piece not in UNION_TAGS:
                location += f".{piece}"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{location.lstrip('.') or '<root>'}: {message}")
    return "; ".join(parts)
