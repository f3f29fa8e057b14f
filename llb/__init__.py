"""llb: a Python build-graph DSL in the spirit of BuildKit's LLB.

The public names below are loaded on first use (PEP 562), so a process that only decodes and
solves a serialised definition does not pay for importing the whole DSL.
"""

from __future__ import annotations

import importlib
import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

# public name -> the module defining it
_EXPORTS: dict[str, str] = {
    "FileActions": "llb.actions", "copy": "llb.actions", "mkdir": "llb.actions",
    "mkfile": "llb.actions", "rm": "llb.actions",
    "op_digest": "llb.codec",
    "Definition": "llb.definition", "op_outputs": "llb.definition",
    "BuildFileError": "llb.errors", "DefinitionError": "llb.errors", "LLBError": "llb.errors",
    "diff": "llb.merge", "merge": "llb.merge",
    "MountSpec": "llb.mounts", "cache_mount": "llb.mounts", "mount": "llb.mounts",
    "tmpfs": "llb.mounts",
    "Copy": "llb.ops", "DiffOp": "llb.ops", "ExecOp": "llb.ops", "FileOp": "llb.ops",
    "Input": "llb.ops", "MergeOp": "llb.ops", "Mkdir": "llb.ops", "Mkfile": "llb.ops",
    "Mount": "llb.ops", "OpMetadata": "llb.ops", "Rm": "llb.ops", "SourceOp": "llb.ops",
    "normalize_image_ref": "llb.refs",
    "image": "llb.sources", "local": "llb.sources", "oci_layout": "llb.sources",
    "scratch": "llb.sources",
    "ExecState": "llb.state", "State": "llb.state",
}

__all__ = [
    "BuildFileError", "Copy", "Definition", "DefinitionError", "DiffOp", "ExecOp", "ExecState",
    "FileActions", "FileOp", "Input", "LLBError", "MergeOp", "Mkdir", "Mkfile", "Mount",
    "MountSpec", "OpMetadata", "Rm", "SourceOp", "State", "cache_mount", "copy", "diff",
    "image", "local", "merge", "mkdir", "mkfile", "mount", "normalize_image_ref", "oci_layout",
    "op_digest", "op_outputs", "rm", "scratch", "tmpfs",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from llb.actions import FileActions, copy, mkdir, mkfile, rm
    from llb.codec import op_digest
    from llb.definition import Definition, op_outputs
    from llb.errors import BuildFileError, DefinitionError, LLBError
    from llb.merge import diff, merge
    from llb.mounts import MountSpec, cache_mount, mount, tmpfs
    from llb.ops import (
        Copy, DiffOp, ExecOp, FileOp, Input, MergeOp, Mkdir, Mkfile, Mount, OpMetadata, Rm,
        SourceOp,
    )
    from llb.refs import normalize_image_ref
    from llb.sources import image, local, oci_layout, scratch
    from llb.state import ExecState, State


# submodules `import llb` used to load eagerly: `llb.ops` etc. still work after a bare
# `import llb` (llb.merge is the function, as before)
_SUBMODULES = frozenset({"actions", "codec", "definition", "errors", "mounts", "ops", "paths",
                         "refs", "sources", "state", "validate"})


def __getattr__(name: str) -> Any:
    """Import the module holding public `name` on first access and cache the value here."""
    module = _EXPORTS.get(name)
    if module is None:
        if name in _SUBMODULES:
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module 'llb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """`llb.merge` is both a submodule and a public function: when the import system binds the
    submodule on the package after loading it, keep the function under that name instead."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}"
                and _EXPORTS.get(name) == value.__name__):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
