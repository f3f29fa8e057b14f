"""Property tests of apply_layers: for random chains of file operations, applying a state's
layer chain onto an empty tree rebuilds exactly that state's tree (kinds, contents, modes,
owners, xattrs, mtimes), hardlinked or copied; and a merge never changes its inputs."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llb.snapshot.merge as merge_mod
from mergetree import Workshop, checksum, picture
from llb.snapshot.merge import apply_layers

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chown")

NAMES = ["a", "b", "a/x", "a/x/z", "b/y"]
KEYS = ("kind", "data", "mode", "uid", "gid", "xattrs", "mtime")


def _op(kind: str, path: str, arg: int):
    def op(root: Path) -> None:
        p = root / path
        try:
            if kind == "file":
                if p.is_dir() and not p.is_symlink():
                    return
                if p.is_symlink() or p.exists():
                    p.unlink()
                p.write_bytes(b"x" * arg)
                os.chmod(p, 0o600 + arg)
                os.utime(p, ns=(arg * 10**9, arg * 10**9))
            elif kind == "dir":
                p.mkdir(0o755)
                os.chmod(p, 0o700 + arg)
            elif kind == "rm":
                if p.is_dir() and not p.is_symlink():
                    for sub in sorted(p.rglob("*"), reverse=True):
                        sub.rmdir() if sub.is_dir() and not sub.is_symlink() else sub.unlink()
                    p.rmdir()
                else:
                    p.unlink()
            elif kind == "symlink":
                os.symlink(["a", "../b", "/etc", "x"][arg % 4], p)
            elif kind == "chown":
                os.chown(p, arg, arg, follow_symlinks=False)
            elif kind == "xattr":
                os.setxattr(p, "user.k", bytes([65 + arg]), follow_symlinks=False)
            elif kind == "link":
                os.link(root / NAMES[arg % len(NAMES)], p, follow_symlinks=False)
        except OSError:
            pass  # an op that makes no sense on this tree (missing parent...) does nothing
    return op


ops = st.tuples(st.sampled_from(["file", "dir", "rm", "symlink", "chown", "xattr", "link"]),
                st.sampled_from(NAMES), st.integers(0, 7)).map(lambda t: _op(*t))
chains = st.lists(st.lists(ops, min_size=1, max_size=5), min_size=1, max_size=4)


def _view(pic: dict) -> dict:
    return {rel: {k: info[k] for k in KEYS} for rel, info in pic.items()}


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=chains, copy=st.booleans())
def test_applying_a_chain_rebuilds_its_tree(tmp_path_factory, monkeypatch, steps, copy):
    base = tmp_path_factory.mktemp("prop")
    shop = Workshop(base / "w")
    state = shop.scratch()
    for step in steps:
        state = state.do(*step)
    trees = [layer.root for layer in state.chain]
    before = [checksum(t) for t in trees]
    dest = base / "dest"
    dest.mkdir()
    with monkeypatch.context() as m:
        if copy:
            def refuse(*a, **kw):
                raise OSError(errno.EXDEV, "refused")
            m.setattr(merge_mod, "_link", refuse)
        apply_layers(dest, state.chain)
    assert _view(picture(dest)) == _view(picture(state.tree))
    assert [checksum(t) for t in trees] == before


def _keep_last(layers: list) -> list:
    out, seen = [], set()
    for layer in reversed(layers):
        if layer.id not in seen:
            seen.add(layer.id)
            out.append(layer)
    return out[::-1]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(states=st.lists(chains, min_size=1, max_size=3),
       picks=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=10))
def test_a_repeated_layer_applies_as_its_last_occurrence(tmp_path_factory, states, picks):
    """What snapshot.chains relies on to build a merge that repeats layers: applying a
    sequence of layers gives the same tree as applying it with every repeated layer kept at
    its last occurrence only."""
    base = tmp_path_factory.mktemp("rep")
    shop = Workshop(base / "w")
    built = []
    for steps in states:
        s = shop.scratch()
        for step in steps:
            s = s.do(*step)
        built.append(s.chain)
    seq = [built[i % len(built)][j % len(built[i % len(built)])] for i, j in picks]
    full, once = base / "full", base / "once"
    full.mkdir()
    once.mkdir()
    apply_layers(full, seq)
    apply_layers(once, _keep_last(seq))
    assert _view(picture(once)) == _view(picture(full))
