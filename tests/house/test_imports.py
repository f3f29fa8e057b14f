"""The package's shape: no import cycle between its modules (type-checking imports count),
and no module reaches into another module's private (`_name`) functions, classes or
attributes. Checked statically over the source, so it covers code no test runs."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import networkx as nx

import llb

_TOP = Path(llb.__file__).resolve().parent
# namedtuple's public API and the interpreter's documented underscore functions
_ALLOWED_ATTRS = {"_replace", "_asdict", "_fields", "_make", "_exit", "_getframe"}


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (rooms are llb/ symlinks to top folders)."""
    out: dict[str, Path] = {}
    paths = [Path(d, f) for d, _, files in os.walk(_TOP, followlinks=True) for f in files
             if f.endswith(".py")]
    for path in paths:
        rel = path.relative_to(_TOP).with_suffix("")
        parts = ["llb", *rel.parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement, nested or not."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, []) if sub in known else (base, [a.name]))
    return out


def _graph() -> nx.DiGraph:
    known = _modules()
    g = nx.DiGraph()
    g.add_nodes_from(known)
    for name, path in known.items():
        for target, _ in _imports(name, path, known):
            if target in known and target != name:
                g.add_edge(name, target)
    return g


def test_the_package_has_its_rooms() -> None:
    names = set(_modules())
    for room in ("llb.cli", "llb.solver", "llb.snapshot", "llb.executor"):
        assert room in names


def test_no_import_cycles() -> None:
    cycles = [sorted(c) for c in nx.strongly_connected_components(_graph()) if len(c) > 1]
    assert cycles == []


def _defined_private(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, classes, assignments, attributes of self,
    and slot names."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)  # __slots__ entries, getattr/setattr names
    return {n for n in out if n.startswith("_")}


def test_no_module_uses_another_modules_private_names() -> None:
    known = _modules()
    offenders: list[str] = []
    for name, path in sorted(known.items()):
        if name.endswith("_pb2"):
            continue  # protoc's generated code (llb/pb/ops_pb2.py) is not ours to shape
        tree = _parse(path)
        mine = _defined_private(tree)
        for target, names in _imports(name, path, known):
            if target in known and target != name:
                offenders += [f"{name} imports {target}.{n}" for n in names
                              if n.startswith("_") and not n.startswith("__")]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__") or attr in _ALLOWED_ATTRS:
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if attr not in mine:
                offenders.append(f"{name}:{node.lineno} uses .{attr}")
    assert offenders == []
