"""Exporters: write a solved result out of the store (`--output type=local|tar`).

Each lives in its own module; the names below are imported on first use, so exporting a
directory does not load tarfile."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ExportError", "export_local", "export_tar"]

_EXPORTS = {"ExportError": "llb.solver.exporters.local", "export_local": "llb.solver.exporters.local",
            "export_tar": "llb.solver.exporters.tar"}


def __getattr__(name: str) -> Any:
    """Import the module holding public `name` on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
