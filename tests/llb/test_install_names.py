"""llb installs one top-level import name, `llb`: the rooms kept in their own folders
(solver/, snapshot/, cli/, content/) are imported as llb.solver, llb.snapshot, llb.cli and
llb.content, never under names that would collide with unrelated PyPI projects."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
from pathlib import Path

import llb

_REPO = Path(llb.__file__).resolve().parent.parent
_ROOMS = ("solver", "snapshot", "cli", "content")


def _package_files() -> list[Path]:
    return sorted(p for top in ("llb", *_ROOMS) for p in (_REPO / top).rglob("*.py"))


def test_the_distribution_installs_only_llb() -> None:
    top = importlib.metadata.distribution("llb").read_text("top_level.txt")
    assert top is not None and top.split() == ["llb"]
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="llb")
    assert script.value == "llb.cli.main:run"


def test_rooms_are_subpackages_of_llb() -> None:
    for room in _ROOMS:
        spec = importlib.util.find_spec(f"llb.{room}")
        assert spec is not None and spec.origin is not None
        assert Path(spec.origin).resolve() == _REPO / room / "__init__.py"


def test_no_module_imports_a_room_by_its_bare_name() -> None:
    offenders = []
    for path in _package_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(_REPO)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in _ROOMS]
    assert offenders == []
    assert len(_package_files()) > 50


def test_the_package_ships_its_type_hints() -> None:
    import tomllib

    assert (_REPO / "llb" / "py.typed").is_file()
    config = tomllib.loads((_REPO / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["llb"]
