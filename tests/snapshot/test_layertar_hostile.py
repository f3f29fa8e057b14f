"""Hostile layer blobs, one test per case: each is one LayerError line naming the layer and
the entry, nothing outside the snapshot is touched, and nothing half-written is kept (the
layer stays lazy, no snapshot directory, the session's temporaries gone)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from llb.snapshot import Store
from llb.snapshot.errors import LayerError
from layerhelp import MemoryOpener, compress, raw_tar, sha

BASE = raw_tar([("etc", "d", ""), ("etc/passwd", "f", "root:x:0:0"), ("dir", "d", "")])


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the store that a hostile layer aims at."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret").write_text("s")
    return d


def _fails(store: Store, tmp_path: Path, tar: bytes, match: str, *, blob: bytes | None = None,
           diff_id: str | None = None) -> None:
    """Apply BASE then `tar` (its blob, gzip unless given): LayerError matching `match`."""
    opener = MemoryOpener(tmp_path / "opened")
    store.opener = opener
    base = opener.add(compress(BASE, "gzip"), BASE)
    bad = opener.add(blob if blob is not None else compress(tar, "gzip"), tar,
                     diff_id=diff_id)
    image = store.add_image_layers(None, [base, bad], "test://hostile")
    assert image is not None
    with pytest.raises(LayerError, match=match) as info:
        with store.view(image):
            pass
    assert "\n" not in str(info.value)
    assert bad.digest in str(info.value)
    assert store.is_lazy(image.id)
    assert not store.is_lazy(image.layer_chain()[0].id)  # the good layer below is kept
    assert not (Path(store.snapshots_dir) / image.id).exists()
    assert [p.name for p in Path(store.session.dir).iterdir() if not p.name.startswith("trash")] == []


def test_a_dotdot_entry(store: Store, tmp_path: Path, outside: Path) -> None:
    _fails(store, tmp_path, raw_tar([("dir/../../../outside/evil", "f", "x")]),
           "has a '..' component")
    assert sorted(os.listdir(outside)) == ["secret"]


def test_an_absolute_entry(store: Store, tmp_path: Path, outside: Path) -> None:
    _fails(store, tmp_path, raw_tar([(f"{outside}/evil", "f", "x")]), "is an absolute path")
    assert sorted(os.listdir(outside)) == ["secret"]


def test_an_entry_through_an_absolute_symlink(store: Store, tmp_path: Path, outside: Path) -> None:
    _fails(store, tmp_path, raw_tar([("evil", "l", str(outside)), ("evil/pwned", "f", "x")]),
           "goes through symlink /evil -> .*leads outside")
    assert sorted(os.listdir(outside)) == ["secret"]


def test_an_entry_through_a_symlink_climbing_out(store: Store, tmp_path: Path,
                                                  outside: Path) -> None:
    _fails(store, tmp_path, raw_tar([("dir/up", "l", "../../../../../../../.."),
                                     ("dir/up/pwned", "f", "x")]),
           "symlink that leads outside")


def test_a_hardlink_climbing_out(store: Store, tmp_path: Path, outside: Path) -> None:
    _fails(store, tmp_path, raw_tar([("h", "h", "../../../outside/secret")]),
           "has a '..' component")


def test_an_absolute_hardlink(store: Store, tmp_path: Path, outside: Path) -> None:
    _fails(store, tmp_path, raw_tar([("h", "h", str(outside / "secret"))]),
           "is an absolute path")
    assert os.stat(outside / "secret").st_nlink == 1


def test_a_hardlink_through_a_symlink_leading_out(store: Store, tmp_path: Path,
                                                  outside: Path) -> None:
    _fails(store, tmp_path, raw_tar([("evil", "l", str(outside)), ("h", "h", "evil/secret")]),
           "leads outside")
    assert os.stat(outside / "secret").st_nlink == 1


def test_a_hardlink_to_nothing(store: Store, tmp_path: Path) -> None:
    _fails(store, tmp_path, raw_tar([("h", "h", "etc/shadow")]), "which does not exist")


def test_a_hardlink_to_a_directory(store: Store, tmp_path: Path) -> None:
    _fails(store, tmp_path, raw_tar([("h", "h", "etc")]), "hardlink to directory")


def test_an_overlay_whiteout_device(store: Store, tmp_path: Path) -> None:
    _fails(store, tmp_path, raw_tar([("etc/passwd", "c", "0,0")]), "0/0 character device")


def test_a_duplicate_entry(store: Store, tmp_path: Path) -> None:
    _fails(store, tmp_path, raw_tar([("a", "f", "1"), ("dir/x", "f", "2"), ("a", "f", "3")]),
           "'a': appears twice")


def test_a_duplicate_through_another_name(store: Store, tmp_path: Path) -> None:
    _fails(store, tmp_path, raw_tar([("a", "f", "1"), ("./a", "f", "2")]), "appears twice")


def test_a_truncated_gzip_stream(store: Store, tmp_path: Path) -> None:
    tar = raw_tar([("big", "f", os.urandom(200_000))])
    blob = gzip.compress(tar)
    _fails(store, tmp_path, tar, "truncated or corrupt", blob=blob[: len(blob) // 2])


def test_a_corrupt_gzip_stream(store: Store, tmp_path: Path) -> None:
    tar = raw_tar([("big", "f", os.urandom(200_000))])
    blob = bytearray(gzip.compress(tar))
    for i in range(1000, 1100):
        blob[i] ^= 0xFF
    _fails(store, tmp_path, tar, "truncated or corrupt", blob=bytes(blob))


def test_a_truncated_tar(store: Store, tmp_path: Path) -> None:
    tar = raw_tar([("big", "f", os.urandom(200_000))])
    _fails(store, tmp_path, tar, "truncated or corrupt",
           blob=gzip.compress(tar[: 512 + 100_000]))


def test_a_diff_id_that_does_not_match(store: Store, tmp_path: Path) -> None:
    tar = raw_tar([("a", "f", "1")])
    _fails(store, tmp_path, tar, "rootfs.diff_ids says sha256:0{64}",
           diff_id="sha256:" + "0" * 64)


def test_an_unsupported_entry_type(store: Store, tmp_path: Path) -> None:
    tar = bytearray(raw_tar([("a", "f", "")]))
    tar[156:157] = b"V"  # a GNU volume header in place of the file
    tar[148:156] = b"%06o\0 " % (sum(tar[:148]) + sum(tar[156:512]) + 8 * 32)
    _fails(store, tmp_path, bytes(tar), "unsupported entry type")


def test_a_corrupt_pulled_layer_can_be_retried(store: Store, tmp_path: Path) -> None:
    """After a failure nothing blocks a later unpack (the lock is released, no leftovers)."""
    opener = MemoryOpener(tmp_path / "opened")
    store.opener = opener
    tar = raw_tar([("a", "f", "1")])
    rec = opener.add(gzip.compress(tar), tar)
    good = opener.blobs[rec.digest]
    opener.blobs[rec.digest] = good[:20]
    image = store.add_image_layers(None, [rec], "test://retry")
    with pytest.raises(LayerError):
        with store.view(image):
            pass
    opener.blobs[rec.digest] = good
    with store.view(image) as v:
        assert (Path(v) / "a").read_text() == "1"
    assert sha(good) == rec.digest
