"""The layer <-> blob bridge for exporters (solver.layerblobs): one blob per layer of a
chain, a merge's blobs are its inputs' blobs, a built layer is packed once per compression
and epoch, a pulled layer keeps its blob without being downloaded, exports with
SOURCE_DATE_EPOCH are byte-identical across builds, and GC keeps exactly the blobs of the
snapshots that remain."""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from pathlib import Path

import pytest
import zstandard

import llb
from llb.content.store import ContentStore
from llb.solver import layerblobs
from llb.solver.gc import prune
from llb.solver.layerblobs import fetch_blobs, layer_blobs
from llb.solver.solve import Solver
from layerhelp import MemoryOpener, compress, raw_tar

EPOCH = 1_500_000_000


def _solve(root: Path, state: llb.State, snapshotter: str = "auto"):
    solver = Solver(root, snapshotter)
    result = solver.solve(state.to_definition())
    return solver, result.ref


def _two_files():
    a = llb.scratch().file(llb.mkdir("/a").mkfile("/a/one", b"1" * 5000))
    b = llb.scratch().file(llb.mkfile("/b", b"2")).file(llb.rm("/b").mkfile("/c", b"3"))
    return a, b


def _decompressed(content: ContentStore, digest: str, compression: str) -> bytes:
    data = content.read(digest, limit=1 << 30)
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


@pytest.mark.parametrize("compression", ["gzip", "zstd", "uncompressed"])
def test_one_blob_per_layer_stored_with_its_diff_id(tmp_path: Path, compression: str) -> None:
    a, b = _two_files()
    solver, ref = _solve(tmp_path / "root", b)
    content = ContentStore(tmp_path / "root")
    try:
        blobs = layer_blobs(solver.store, content, ref, compression=compression)
        assert [x.layer_id for x in blobs] == [layer.id for layer in ref.layer_chain()]
        assert len(blobs) == 2
        for blob in blobs:
            assert content.info(blob.digest).size == blob.size
            tar = _decompressed(content, blob.digest, compression)
            assert blob.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
            assert blob.media_type.endswith({"gzip": "+gzip", "zstd": "+zstd",
                                             "uncompressed": ".tar"}[compression])
            assert content.session_holder in content.leases(blob.digest)
        assert layer_blobs(solver.store, content, None) == []
    finally:
        content.close()
        solver.close()


def test_a_merge_is_its_inputs_blobs_and_each_layer_is_packed_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _two_files()
    solver, m = _solve(tmp_path / "root", llb.merge([a, b]))
    packed: list[str] = []
    real = layerblobs.pack_layer

    def counting(layer, sink, **kw):  # type: ignore[no-untyped-def]
        packed.append(layer.id)
        return real(layer, sink, **kw)

    monkeypatch.setattr(layerblobs, "pack_layer", counting)
    content = ContentStore(tmp_path / "root")
    try:
        ra = solver.solve(a.to_definition()).ref
        rb = solver.solve(b.to_definition()).ref
        alone = layer_blobs(solver.store, content, ra) + layer_blobs(solver.store, content, rb)
        assert len(packed) == 3
        merged = layer_blobs(solver.store, content, m)
        assert merged == alone
        assert len(packed) == 3  # remembered: no layer packed twice
        layer_blobs(solver.store, content, m, compression="zstd")
        assert len(packed) == 6  # another compression is another blob
        layer_blobs(solver.store, content, m, compression="gzip", epoch=EPOCH)
        assert len(packed) == 9  # and so is another epoch
        layer_blobs(solver.store, content, m, compression="gzip", epoch=EPOCH)
        assert len(packed) == 9
    finally:
        content.close()
        solver.close()


def test_exports_with_an_epoch_are_byte_identical_across_builds(tmp_path: Path) -> None:
    digests = []
    for i in range(2):
        if i:
            time.sleep(1.1)  # the second build's files get other mtimes
        a, b = _two_files()
        solver, ref = _solve(tmp_path / f"root{i}", llb.merge([a, b]))
        content = ContentStore(tmp_path / f"root{i}")
        try:
            digests.append(([x.digest for x in layer_blobs(solver.store, content, ref,
                                                          epoch=EPOCH)],
                            [x.digest for x in layer_blobs(solver.store, content, ref)]))
        finally:
            content.close()
            solver.close()
    assert digests[0][0] == digests[1][0]
    assert digests[0][1] != digests[1][1]  # without an epoch, the mtimes differ


def test_a_pulled_layer_keeps_its_blob_and_is_not_downloaded(tmp_path: Path) -> None:
    solver = Solver(tmp_path / "root")
    opener = MemoryOpener(tmp_path / "opened")
    opener.fetched: list[str] = []  # type: ignore[misc]
    opener.fetch = lambda origin, recs, progress=None: opener.fetched.extend(  # type: ignore
        r.digest for r in recs)
    solver.store.opener = opener
    content = ContentStore(tmp_path / "root")
    try:
        tar = raw_tar([("f", "f", "x")])
        rec = opener.add(compress(tar, "gzip"), tar)
        image = solver.store.add_image_layers(
            None, [rec], "- docker-image://127.0.0.1:5000/lib/base@sha256:" + "a" * 64)
        built = solver.solve(llb.scratch().file(llb.mkfile("/g", b"y")).to_definition()).ref
        merged = solver.store.merge([image, built])
        blobs = layer_blobs(solver.store, content, merged, compression="zstd")
        assert (blobs[0].digest, blobs[0].size, blobs[0].media_type, blobs[0].diff_id) == rec
        assert blobs[0].source == "127.0.0.1:5000/lib/base"
        assert blobs[1].media_type.endswith("+zstd") and blobs[1].source is None
        assert opener.opened() == [] and solver.store.is_lazy(image.id)
        fetch_blobs(solver.store, content, blobs)
        assert opener.fetched == [rec.digest]  # only the one not in the content store
    finally:
        content.close()
        solver.close()


def test_gc_keeps_the_blobs_of_remaining_snapshots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    a, b = _two_files()
    solver, ref = _solve(root, b)
    content = ContentStore(root)
    blobs = layer_blobs(solver.store, content, ref)
    stray = content.put(os.urandom(64)).digest
    content.close()
    solver.close()
    prune(root)  # records are recent: nothing goes but the stray blob
    content = ContentStore(root)
    try:
        assert all(content.exists(x.digest) for x in blobs)
        assert not content.exists(stray)
    finally:
        content.close()
    prune(root, all_=True)
    content = ContentStore(root)
    try:
        assert not any(content.exists(x.digest) for x in blobs)
    finally:
        content.close()


def test_the_solver_speaks_plain_http_only_to_loopback_and_insecure_registries(
        tmp_path: Path) -> None:
    with Solver(tmp_path / "root", insecure=["registry.internal:5000"]) as solver:
        transport = solver.puller.client().transport
        assert transport.plain_http("registry.internal:5000")
        assert transport.plain_http("127.0.0.1:5000") and transport.plain_http("localhost:80")
        assert not transport.plain_http("registry.example.com")
