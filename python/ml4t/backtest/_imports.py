"""Importing user code named in a config: ``package.module:Name`` paths (strategies, custom
risk rules). A config that names a module runs it: see the CLI docs."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType


class ImportFailed(Exception):
    """The module of an import path could not be imported; the message is ``rule: detail``
    (``cannot import 'mod': ...`` or ``import_failed: module 'mod' (file, line N) raised ...``),
    ready to follow the caller's location."""


def import_module(module_name: str, search_path: str | Path | None = None) -> ModuleType:
    """Imports ``module_name`` with ``search_path`` first on ``sys.path`` (only while importing).

    Raises:
        ImportFailed: the module is not found (or an import inside it fails), or running it
            raised; the original exception is its ``__cause__``.
    """
    added = search_path is not None and str(search_path) not in sys.path
    if added:
        sys.path.insert(0, str(search_path))
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise ImportFailed(f"cannot import '{module_name}': {err}") from err
    except Exception as err:
        raise ImportFailed(
            f"import_failed: module '{module_name}' ({raised_where(err)}) raised "
            f"{type(err).__name__}: {err}"
        ) from err
    finally:
        if added:
            sys.path.remove(str(search_path))


def raised_where(err: BaseException) -> str:
    """``file, line N`` of the innermost frame of ``err``'s traceback (where it was raised)."""
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}, line {err.lineno}"
    tb = err.__traceback__
    if tb is None:
        return "unknown location"
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno}"
