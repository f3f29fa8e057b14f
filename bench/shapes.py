"""The benchmark shapes, each written twice: as an llb build file (what a user solves with
`llb solve build.py`) and as the JSON graph of the same ops that BuildKit's own Go client
(../shared/buildkit/bin/llbjson, client/llb v0.11.6) marshals into the definition given to
`buildctl build`. Both mkfile modes default to 0644 and mkdir to 0755 without parents, as in
both clients, so the two engines export the same tree (bench_solver checks that it does)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

HEADER = "import llb\n\n"

BUILDS = {
    "merge-files": '''
def build():
    parts = []
    for i in range({n}):
        acts = llb.mkdir(f"/d{{i}}")
        for j in range(100):
            acts = acts.mkfile(f"/d{{i}}/f{{j}}", f"file {{j}} of {{i}}\\n".encode())
        parts.append(llb.scratch().file(acts))
    return llb.merge(parts)
''',
    "merge-big": '''
def build():
    return llb.merge([llb.local(f"big{{i}}") for i in range({n})])
''',
    "chain": '''
def build():
    s = llb.scratch()
    for i in range({n}):
        s = s.file(llb.mkfile(f"/f{{i}}", f"{{i}}\\n".encode()))
    return s
''',
    "merge-del": '''
def build():
    acts = llb.mkdir("/data")
    for i in range({n}):
        acts = acts.mkfile(f"/data/f{{i}}", b"x" * 100)
    full = llb.scratch().file(acts)
    rm = None
    for i in range(0, {n}, 2):
        rm = llb.rm(f"/data/f{{i}}") if rm is None else rm.rm(f"/data/f{{i}}")
    halved = full.file(rm)
    third = llb.scratch().file(llb.mkdir("/data").mkfile("/data/keep", b"k").mkfile("/data/f0", b"t"))
    return llb.merge([third, halved])
''',
    "wide-deep": '''
def build():
    # 100 chains of 100 FileOps, merged in a two-level tree (10,012 vertices); each step
    # rewrites its chain's file, so the result holds 100 files and the export is small
    chains = []
    for w in range(100):
        s = llb.scratch()
        for d in range(100):
            s = s.file(llb.mkfile(f"/c{{w}}", f"step {{d}}\\n".encode()))
        chains.append(s)
    groups = [llb.merge(chains[i:i + 10]) for i in range(0, 100, 10)]
    return llb.merge(groups)
''',
}


class Shape(NamedTuple):
    """One benchmark shape: its label, build kind and size; compared with BuildKit or not."""

    label: str
    kind: str
    n: int
    buildkit: bool = True


SHAPES = [
    Shape("chain 100", "chain", 100),
    Shape("chain 1000", "chain", 1000),
    Shape("merge-del 1000", "merge-del", 1000),
    Shape("merge-files 100", "merge-files", 100),
    Shape("merge-files 500", "merge-files", 500),
    Shape("merge-big 4x64MiB", "merge-big", 4),
    Shape("cached 10k-vertex graph", "wide-deep", 10012, buildkit=False),
]


def build_file(kind: str, n: int) -> str:
    """The llb build file of a shape."""
    return HEADER + BUILDS[kind].format(n=n)


# ------------------------------------------------------------------ BuildKit's side


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _mkfile(path: str, data: bytes) -> dict[str, Any]:
    return {"a": "mkfile", "path": path, "data": _b64(data), "mode": 0o644}


def _mkdir(path: str) -> dict[str, Any]:
    return {"a": "mkdir", "path": path, "mode": 0o755}


def graph(kind: str, n: int) -> dict[str, Any]:
    """The llbjson graph of the same shape as build_file(kind, n)."""
    nodes: list[dict[str, Any]] = []

    def add(node: dict[str, Any]) -> int:
        nodes.append(node)
        return len(nodes) - 1

    if kind == "chain":
        prev = None
        for i in range(n):
            prev = add({"op": "file", "base": prev, "actions": [_mkfile(f"/f{i}", f"{i}\n".encode())]})
        root = prev
    elif kind == "merge-files":
        parts = []
        for i in range(n):
            acts = [_mkdir(f"/d{i}")] + [_mkfile(f"/d{i}/f{j}", f"file {j} of {i}\n".encode())
                                         for j in range(100)]
            parts.append(add({"op": "file", "base": None, "actions": acts}))
        root = add({"op": "merge", "inputs": parts})
    elif kind == "merge-del":
        full = add({"op": "file", "base": None, "actions": [_mkdir("/data")] + [
            _mkfile(f"/data/f{i}", b"x" * 100) for i in range(n)]})
        halved = add({"op": "file", "base": full, "actions": [
            {"a": "rm", "path": f"/data/f{i}"} for i in range(0, n, 2)]})
        third = add({"op": "file", "base": None, "actions": [
            _mkdir("/data"), _mkfile("/data/keep", b"k"), _mkfile("/data/f0", b"t")]})
        root = add({"op": "merge", "inputs": [third, halved]})
    elif kind == "merge-big":
        root = add({"op": "merge", "inputs": [add({"op": "local", "name": f"big{i}"})
                                              for i in range(n)]})
    else:
        raise ValueError(f"no BuildKit graph for {kind}")
    return {"root": root, "nodes": nodes}


def graph_json(kind: str, n: int) -> str:
    return json.dumps(graph(kind, n))


# ------------------------------------------------------------------ local contexts


def contexts(kind: str, n: int, where: Path) -> dict[str, Path]:
    """The local directories a shape reads (name -> path), created once and kept: merge-big's
    four 64 MiB files of random bytes, dated a minute back (an existing context, not one
    written this second)."""
    if kind != "merge-big":
        return {}
    out = {}
    for i in range(n):
        ctx = where / f"big{i}"
        f = ctx / f"big{i}.bin"
        if not f.exists() or f.stat().st_size != 64 << 20:
            ctx.mkdir(parents=True, exist_ok=True)
            with open(f, "wb") as fh:
                for _ in range(64):
                    fh.write(os.urandom(1 << 20))
            old = time.time() - 60
            os.utime(f, (old, old))
        out[f"big{i}"] = ctx
    return out
