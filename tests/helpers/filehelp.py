"""Running one FileOp on a store and reading its result, for the FileOp tests."""

from __future__ import annotations

import os
from pathlib import Path

from llb.ops import FileOp, Input
from llb.solver.ops import file as fileop
from llb.solver.ops.context import OpContext

T1 = 1_600_000_000_123_456_789
T2 = 1_500_000_000_000_000_001


def run_file(store, base, *actions, sources=(), cancelled=False):
    """Run one FileOp (inputs: base, then sources) and return its result ref."""
    op = FileOp(inputs=tuple(Input(f"sha256:{i:064x}") for i in range(1 + len(sources))),
                actions=tuple(actions))
    ctx = OpContext(store=store, root=Path("/nonexistent"), vertex="sha256:" + "ab" * 32,
                    name=fileop.name(op))
    if cancelled:
        ctx.cancelled.set()
    (ref,) = fileop.run(ctx, op, [base, *sources])
    return ref


def seed(store, parent, fn):
    """A committed snapshot made by fn(path) on a plain (untrusted) mutable."""
    m = store.prepare(parent)
    with m.mount() as p:
        fn(Path(p))
    return m.commit()


def st(store, ref, path):
    with store.view(ref) as root:
        return os.lstat(Path(root) / path.lstrip("/"))


def read(store, ref, path):
    with store.view(ref) as root:
        return (Path(root) / path.lstrip("/")).read_bytes()


def exists(store, ref, path):
    with store.view(ref) as root:
        return os.path.lexists(Path(root) / path.lstrip("/"))


def listing(store, ref):
    with store.view(ref) as root:
        out = []
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                out.append(os.path.relpath(os.path.join(dirpath, n), root))
        return sorted(out)
