"""The `llb` package loads its public names lazily: every name stays importable, listed and
identical to its defining module's, and a bare import (or a solve's definition decoding) does
not load the DSL."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import llb

_NAMES = [
    "BuildFileError", "Copy", "Definition", "DefinitionError", "DiffOp", "ExecOp", "ExecState",
    "FileActions", "FileOp", "Input", "LLBError", "MergeOp", "Mkdir", "Mkfile", "Mount",
    "MountSpec", "OpMetadata", "Rm", "SourceOp", "State", "cache_mount", "copy", "diff",
    "image", "local", "merge", "mkdir", "mkfile", "mount", "normalize_image_ref", "oci_layout",
    "op_digest", "op_outputs", "rm", "scratch", "tmpfs",
]


def test_public_names_listed_and_importable() -> None:
    assert sorted(llb.__all__) == sorted(_NAMES)
    assert set(_NAMES) <= set(dir(llb))
    ns: dict = {}
    exec("from llb import *", ns)  # noqa: S102
    assert set(_NAMES) <= set(ns)
    assert ns["State"] is llb.State


@pytest.mark.parametrize("name", _NAMES)
def test_public_name_is_the_defining_modules(name: str) -> None:
    value = getattr(llb, name)
    module = importlib.import_module(llb._EXPORTS[name])
    assert getattr(module, name) is value


def test_merge_stays_the_function_after_importing_its_module() -> None:
    code = ("import llb, llb.merge, llb.state\n"
            "from llb.merge import merge\n"
            "assert llb.merge is merge and callable(llb.merge), llb.merge\n"
            "assert llb.ops.FileOp is llb.FileOp\n"
            "try:\n    llb.nope\nexcept AttributeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "module 'llb' has no attribute 'nope'"


def test_decoding_a_definition_does_not_load_the_dsl(tmp_path) -> None:
    data = llb.scratch().file(llb.mkfile("/f", b"x")).to_definition().to_bytes()
    (tmp_path / "g.llb").write_bytes(data)
    code = ("import sys\nfrom llb.cli.loader import load_definition\n"
            f"d = load_definition({str(tmp_path / 'g.llb')!r})\n"
            "print(len(d.to_bytes()), sorted(m for m in sys.modules if m.startswith('llb.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    size, _, mods = out.stdout.partition(" ")
    assert int(size) == len(data)
    for dsl in ("llb.state", "llb.sources", "llb.actions", "llb.mounts", "llb.merge"):
        assert dsl not in mods
