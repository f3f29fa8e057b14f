"""Blobs under GC: `llb du` lists the content store's blobs (size, in use or not) and `llb
prune` removes the ones no remaining snapshot references and no live process leases."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import llb
from imageexport import solve_export
from llb.cli.main import main
from llb.content.store import ContentStore
from llb.snapshot import Store
from llb.solver.gc import prune, usage



def _state() -> llb.State:
    return llb.scratch().file(llb.mkfile("/a", "a" * 5000)).file(llb.mkfile("/b", "b"))


def _exported(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    solve_export(root, _state(), "type=image,name=example.com/gc/x:1")
    return root


def test_du_lists_blobs_and_prune_removes_strays(tmp_path: Path) -> None:
    root = _exported(tmp_path)
    with ContentStore(root) as content:
        stray = content.put(b"nothing needs me").digest
    cache = usage(root)
    assert cache is not None
    sizes = {b.digest: b.size for b in cache.blobs}
    assert sizes[stray] == len(b"nothing needs me") and len(sizes) == 5
    out = CliRunner().invoke(main, ["du", "--root", str(root)]).output
    assert f"blob {stray}" in out and "unused" in out and "and 5 blobs" in out
    result = prune(root)  # the default policy keeps every (fresh) record
    assert result.removed == 0 and result.freed > 0
    left = {b.digest for b in ContentStore(root).blobs()}
    assert stray not in left


def test_a_blob_a_live_process_leases_survives_prune(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with ContentStore(root) as holder:
        digest = holder.put(b"in flight").digest
        cache = usage(root)
        assert cache is None or all(b.in_use for b in cache.blobs if b.digest == digest)
        prune(root, all_=True)
        assert holder.exists(digest)
    prune(root, all_=True)
    with ContentStore(root) as content:
        assert not content.exists(digest)


def test_prune_all_removes_every_blob(tmp_path: Path) -> None:
    root = _exported(tmp_path)
    assert ContentStore(root).blobs()
    result = prune(root, all_=True)
    assert result.removed >= 2
    assert ContentStore(root).blobs() == []
    assert CliRunner().invoke(main, ["du", "--root", str(root)]).output.strip().endswith(
        "in 0 records")


def test_layer_blobs_of_cached_snapshots_are_kept(tmp_path: Path) -> None:
    root = _exported(tmp_path)
    with Store(root) as store, ContentStore(root) as content:
        kept = set(store.kept_digests())
        assert kept and all(content.exists(d) for d in kept)
    prune(root)
    with ContentStore(root) as content:
        assert all(content.exists(d) for d in kept)
    prune(root, all_=True)
    with ContentStore(root) as content:
        assert not any(content.exists(d) for d in kept)
