"""OCI layer tars: a built layer packed and unpacked again as an image layer gives the same
tree and the same recorded diff (whiteouts and opaque directories included), on both
snapshotters; packing is deterministic and clamps to SOURCE_DATE_EPOCH; gzip, zstd and
uncompressed blobs; whiteouts from hand-made tars follow the image spec."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from llb.snapshot import Store
from llb.snapshot.errors import LayerError
from layerhelp import MemoryOpener, compress, image_of, pack, raw_tar, sha
from treehelp import read_tree


def _entries(root: Path) -> dict[str, tuple]:
    """Every entry's type, mode, owner, mtime, size, target, xattrs and content."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            xattrs = {} if stat.S_ISLNK(st.st_mode) else {
                n: os.getxattr(p, n, follow_symlinks=False)
                for n in os.listxattr(p, follow_symlinks=False) if n.startswith("user.")}
            data = open(p, "rb").read() if stat.S_ISREG(st.st_mode) else None
            target = os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
            rdev = st.st_rdev if stat.S_ISCHR(st.st_mode) else None
            mtime = None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns // 10**9
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_uid, st.st_gid, mtime, data,
                                             target, xattrs, rdev)
    return out


def _build(store: Store):
    """Two layers exercising every kind of change."""
    m = store.prepare(None)
    with m.mount() as d:
        d = Path(d)
        (d / "a/b").mkdir(parents=True)
        (d / "a/b/f.txt").write_text("hello")
        os.symlink("../x", d / "a/link")
        os.link(d / "a/b/f.txt", d / "a/hl")
        (d / "gone").write_text("x")
        (d / "opq/sub").mkdir(parents=True)
        (d / "opq/sub/old").write_text("o")
        (d / "opq/keep").write_text("k")
        (d / "suid").write_bytes(b"\x7fELF")
        os.chown(d / "suid", 1000, 2000)
        os.chmod(d / "suid", 0o4755)  # after the chown, which clears set-id bits
        os.setxattr(d / "a/b/f.txt", "user.note", b"\x00bin\xff")
        os.mknod(d / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mkfifo(d / "fifo")
        (d / "long" / ("x" * 120)).mkdir(parents=True)
        (d / "long" / ("x" * 120) / "é-ünïcode").write_text("u")
        os.utime(d / "gone", ns=(1_234_567_890_123_456_789, 1_234_567_890_123_456_789))
    base = m.commit()
    m = store.prepare(base)
    with m.mount() as d:
        d = Path(d)
        os.unlink(d / "gone")
        shutil.rmtree(d / "opq")
        (d / "opq").mkdir()
        (d / "opq/new").write_text("n")
        (d / "a/b/g").write_text("g")
        os.chmod(d / "a", 0o700)
        (d / "a/hl").unlink()
        (d / "a/hl").mkdir()  # a file replaced by a directory
    top = m.commit()
    return base, top


def test_packed_layers_unpack_to_the_same_tree_and_diffs(store: Store, tmp_path: Path) -> None:
    base, top = _build(store)
    opener = MemoryOpener(tmp_path / "opened")
    store.opener = opener
    image = image_of(store, opener, top.layer_chain())
    assert [store.is_lazy(layer.id) for layer in image.layer_chain()] == [True, True]
    assert opener.opened() == []
    with store.view(image) as got, store.view(top) as want:
        assert _entries(Path(got)) == _entries(Path(want))
    assert [store.is_lazy(layer.id) for layer in image.layer_chain()] == [False, False]
    assert len(opener.opened()) == 2
    assert [l.changes() for l in image.layer_chain()] == [l.changes() for l in top.layer_chain()]
    # and the unpacked layers pack to the very same bytes
    for built, pulled in zip(top.layer_chain(), image.layer_chain()):
        assert pack(built, "uncompressed")[0] == pack(pulled, "uncompressed")[0]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "uncompressed"])
def test_each_compression_unpacks(store: Store, tmp_path: Path, compression: str) -> None:
    _, top = _build(store)
    opener = MemoryOpener(tmp_path / "opened")
    store.opener = opener
    image = image_of(store, opener, top.layer_chain(), compression)
    with store.view(image) as got, store.view(top) as want:
        assert _entries(Path(got)) == _entries(Path(want))


def test_packing_is_deterministic_and_clamps_to_the_epoch(store: Store) -> None:
    base, _ = _build(store)
    layer = base.layer_chain()[0]
    assert pack(layer) == pack(layer)
    tar, _ = pack(layer, "uncompressed", epoch=1_000_000_000)
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        members = t.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names, key=lambda n: n.split("/"))
        assert all(m.mtime <= 1_000_000_000 for m in members)
        assert all(m.uname == "" and m.gname == "" for m in members)
        suid = t.getmember("suid")
        assert (suid.mode, suid.uid, suid.gid) == (0o4755, 1000, 2000)
        assert t.getmember("a/b/f.txt").pax_headers["SCHILY.xattr.user.note"].encode(
            "utf-8", "surrogateescape") == b"\x00bin\xff"
        assert t.getmember("a/hl").islnk() and t.getmember("a/hl").linkname == "a/b/f.txt"
        assert t.getmember("null").ischr() and t.getmember("null").devminor == 3
        assert not t.getmember("gone").pax_headers  # a short ASCII entry needs no PAX
    untouched, _ = pack(layer, "uncompressed")
    with tarfile.open(fileobj=io.BytesIO(untouched)) as t:
        assert t.getmember("gone").mtime == 1_234_567_890  # whole seconds, not clamped
    assert tar.endswith(b"\0" * 1024) and len(tar) % 512 == 0


def test_a_packed_deletion_is_a_whiteout_and_opaque_dirs_are_expanded(store: Store) -> None:
    _, top = _build(store)
    tar, _ = pack(top.layer_chain()[1], "uncompressed")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        names = t.getnames()
    assert ".wh.gone" in names and "opq/.wh.sub" in names
    assert not any(".wh..wh..opq" in n for n in names)
    assert "opq/keep" not in names and "opq/.wh.keep" in names


def _apply(store: Store, tmp_path: Path, tars: list[bytes]):
    opener = MemoryOpener(tmp_path / "opened")
    store.opener = opener
    recs = [opener.add(compress(t, "gzip"), t) for t in tars]
    return store.add_image_layers(None, recs, "test://hand-made")


LOWER = raw_tar([("d", "d", ""), ("d/old", "f", "1"), ("d/sub", "d", ""),
                 ("d/sub/deep", "f", "2"), ("keep", "f", "k"), ("x", "f", "x")])


def test_opaque_hides_the_lower_layers_only_whatever_the_order(store: Store, tmp_path: Path) -> None:
    upper = raw_tar([("d/new", "f", "n"), ("d/sub/mine", "f", "m"), ("d/.wh..wh..opq", "f", "")])
    image = _apply(store, tmp_path, [LOWER, upper])
    with store.view(image) as v:
        assert read_tree(Path(v)) == {"d": None, "d/new": b"n", "d/sub": None,
                                      "d/sub/mine": b"m", "keep": b"k", "x": b"x"}
    changes = {(c.path, c.kind) for c in image.layer_chain()[1].changes()}
    assert {("d/old", "delete"), ("d/sub/deep", "delete"), ("d/new", "add"),
            ("d/sub/mine", "add")} <= changes


def test_whiteouts_remove_from_below_but_not_this_layers_own(store: Store, tmp_path: Path) -> None:
    upper = raw_tar([(".wh.x", "f", ""), ("new", "f", "n"), (".wh.new", "f", ""),
                     ("d/.wh.sub", "f", ""), (".wh.absent", "f", ""),
                     ("d/.wh..wh.plnk", "f", "")])
    image = _apply(store, tmp_path, [LOWER, upper])
    with store.view(image) as v:
        assert read_tree(Path(v)) == {"d": None, "d/old": b"1", "keep": b"k", "new": b"n"}
    assert {(c.path, c.kind) for c in image.layer_chain()[1].changes()} == {
        ("x", "delete"), ("new", "add"), ("d/sub", "delete")}


def test_entries_through_a_relative_symlink_inside_land_where_it_points(store: Store,
                                                                        tmp_path: Path) -> None:
    lower = raw_tar([("usr", "d", ""), ("usr/lib", "d", ""), ("lib", "l", "usr/lib")])
    upper = raw_tar([("lib/libc.so", "f", "c")])
    image = _apply(store, tmp_path, [lower, upper])
    with store.view(image) as v:
        assert (Path(v) / "usr/lib/libc.so").read_bytes() == b"c"
        assert os.readlink(Path(v) / "lib") == "usr/lib"


def test_a_layer_blob_of_the_wrong_compression_is_refused(store: Store, tmp_path: Path) -> None:
    opener = MemoryOpener(tmp_path / "opened")
    store.opener = opener
    rec = opener.add(LOWER, LOWER, "gzip")  # says gzip, is a plain tar
    image = store.add_image_layers(None, [rec], "test://wrong")
    with pytest.raises(LayerError, match="media type says gzip but the data is not compressed"):
        with store.view(image):
            pass
    assert store.is_lazy(image.id)
    assert sha(LOWER) == rec.digest
