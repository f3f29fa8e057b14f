"""Exporters: write a solved result out of the store (`--output type=local|tar`)."""

from solver.exporters.local import ExportError, export_local
from solver.exporters.tar import export_tar

__all__ = ["ExportError", "export_local", "export_tar"]
