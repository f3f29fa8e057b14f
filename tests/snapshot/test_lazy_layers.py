"""Lazy image layers: a pulled layer is unpacked only when something needs its content;
merges and prefix diffs of them stay lazy; two processes needing the same layer unpack it
once; a kill mid-unpack leaves the layer lazy and the next unpack works; prune removes
lazy layers like any other."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from llb.snapshot import SnapshotError, Store
from layerhelp import MemoryOpener, compress, raw_tar

T1 = raw_tar([("base", "d", ""), ("base/one", "f", "1"), ("shared", "f", "s1")])
T2 = raw_tar([("base/two", "f", "2"), (".wh.shared", "f", "")])
T3 = raw_tar([("app", "f", "a")])
T4 = raw_tar([("other", "f", "o")])


def _image(store: Store, opener: MemoryOpener, tars: list[bytes], origin: str = "test://i"):
    recs = [opener.add(compress(t, "gzip"), t) for t in tars]
    return store.add_image_layers(None, recs, origin, keep=["sha256:" + "e" * 64])


@pytest.fixture
def opener(store: Store, tmp_path: Path) -> MemoryOpener:
    o = MemoryOpener(tmp_path / "opened")
    store.opener = o
    return o


def test_a_merge_of_images_stays_lazy_until_viewed(store: Store, opener: MemoryOpener) -> None:
    a = _image(store, opener, [T1, T2])
    b = _image(store, opener, [T4])
    m = store.merge([a, b])
    assert m is not None
    assert [layer.id for layer in m.layer_chain()] == \
        [layer.id for layer in a.layer_chain() + b.layer_chain()]
    assert opener.opened() == [] and store.is_lazy(a.id) and store.is_lazy(b.id)
    with store.view(m) as v:
        assert sorted(os.listdir(v)) == ["base", "other"]
        assert sorted(os.listdir(Path(v) / "base")) == ["one", "two"]
    assert len(opener.opened()) == 3


def test_images_sharing_layers_share_snapshots_and_diff_by_prefix(store: Store,
                                                                  opener: MemoryOpener) -> None:
    base = _image(store, opener, [T1, T2])
    app = _image(store, opener, [T1, T2, T3], "test://app")
    assert [x.id for x in app.layer_chain()[:2]] == [x.id for x in base.layer_chain()]
    d = store.diff(base, app)
    assert d is not None and [x.id for x in d.layer_chain()] == [app.id]
    assert opener.opened() == []
    with store.view(d) as v:
        assert os.listdir(v) == ["app"]
    assert len(opener.opened()) == 3  # its layer needs those below it to be unpacked


def test_changes_of_a_lazy_layer_unpack_it(store: Store, opener: MemoryOpener) -> None:
    image = _image(store, opener, [T1, T2])
    top = image.layer_chain()[1]
    assert {(c.path, c.kind) for c in top.changes()} == {("base/two", "add"),
                                                         ("shared", "delete")}
    assert len(opener.opened()) == 2


def test_an_exec_like_child_of_an_image(store: Store, opener: MemoryOpener) -> None:
    image = _image(store, opener, [T1])
    m = store.prepare(image)
    with m.mount() as d:
        Path(d, "base", "three").write_text("3")
    child = m.commit()
    with store.view(child) as v:
        assert sorted(os.listdir(Path(v) / "base")) == ["one", "three"]


def test_without_an_opener_a_lazy_layer_says_so(store: Store, tmp_path: Path) -> None:
    opener = MemoryOpener(tmp_path / "opened")
    image = _image(store, opener, [T1])
    store.opener = None
    with pytest.raises(SnapshotError, match="not unpacked and this store has no way"):
        with store.view(image):
            pass


class _SlowOpener(MemoryOpener):
    def open(self, origin, blob):  # type: ignore[override]
        time.sleep(0.5)
        return super().open(origin, blob)


def _view_in_child(root: str, kind: str, log: str, blobs: dict, sid: str, out: str) -> None:
    store = Store(Path(root), kind)
    opener = _SlowOpener(Path(log))
    opener.blobs = blobs
    store.opener = opener
    with store.view(store.get(sid)) as v:
        Path(out).write_text(",".join(sorted(os.listdir(Path(v) / "base"))))
    store.close()


def test_two_processes_unpack_a_layer_once(store: Store, opener: MemoryOpener,
                                           tmp_path: Path) -> None:
    image = _image(store, opener, [T1, T2])
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_view_in_child,
                         args=(str(store.root), store.kind, str(opener.log), opener.blobs,
                               image.id, str(tmp_path / f"out{i}")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert [(tmp_path / f"out{i}").read_text() for i in range(2)] == ["one,two"] * 2
    assert sorted(opener.opened()) == sorted(opener.blobs)  # each blob opened once


class _StuckOpener(MemoryOpener):
    def open(self, origin, blob):  # type: ignore[override]
        Path(str(self.log) + ".started").write_text("1")
        time.sleep(600)
        return super().open(origin, blob)


def _stuck_child(root: str, kind: str, log: str, blobs: dict, sid: str) -> None:
    store = Store(Path(root), kind)
    opener = _StuckOpener(Path(log))
    opener.blobs = blobs
    store.opener = opener
    with store.view(store.get(sid)):
        pass


def test_a_kill_mid_unpack_leaves_the_layer_lazy(store: Store, opener: MemoryOpener,
                                                 tmp_path: Path) -> None:
    image = _image(store, opener, [T1])
    log = tmp_path / "stuck"
    p = multiprocessing.get_context("fork").Process(
        target=_stuck_child, args=(str(store.root), store.kind, str(log), opener.blobs,
                                   image.id))
    p.start()
    deadline = time.monotonic() + 30
    while not Path(str(log) + ".started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    assert store.is_lazy(image.id)
    # a directory an unpack left before recording it is replaced
    (Path(store.snapshots_dir) / image.id / "junk").mkdir(parents=True)
    with store.view(image) as v:
        assert sorted(os.listdir(v)) == ["base", "shared"]
    assert not (Path(store.snapshots_dir) / image.id / "junk").exists()
    assert not store.is_lazy(image.id)


def test_prune_removes_lazy_layers_and_what_they_kept(store: Store, opener: MemoryOpener) -> None:
    image = _image(store, opener, [T1, T2])
    ids = [x.id for x in image.layer_chain()]
    assert "sha256:" + "e" * 64 in store.kept_digests()
    del image
    store.prune()
    assert not any(store.exists(i) for i in ids)
    assert store.kept_digests() == set()
    assert not any((Path(store.unpack_dir) / f"{i}.lock").exists() for i in ids)
