"""Unit tests of snapshot.merge.apply_layers on hand-built layers: one test per merge rule,
with the exact expected tree (contents, modes, owners, mtimes, xattrs, link counts)."""

from __future__ import annotations

import errno
import os
import stat
import struct
import subprocess
from pathlib import Path

import pytest

import llb.snapshot.merge as merge_mod
from mergetree import (T0, Change, Chr, D, F, FakeLayer, Fifo, H, L, PathOnlyLayer, Workshop,
                       assert_tree, checksum, chmod, chown, hardlink, merge_chain, mkchardev,
                       mkdir, mkfifo, mkfile, picture, rm, setxattr, sparse, symlink, utime)
from llb.snapshot.merge import MergeError, apply_layers

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: chown, mknod, security.* xattrs")

S = 1_000_000_000  # one second in ns


@pytest.fixture
def shop(tmp_path: Path) -> Workshop:
    return Workshop(tmp_path / "w")


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


def merged(dest: Path, layers) -> Path:
    apply_layers(dest, layers)
    return dest


def ino(p: Path) -> int:
    return os.lstat(p).st_ino


def cap_net_bind_service() -> bytes:
    """A VFS_CAP_REVISION_2 security.capability value: cap_net_bind_service=ep."""
    return struct.pack("<IIIII", 0x02000000 | 0x1, 1 << 10, 0, 0, 0)


# ------------------------------------------------------------------------ basic rules


def test_empty_merge_gives_empty_tree(dest):
    apply_layers(dest, [])
    assert os.listdir(dest) == []


def test_later_layer_wins_on_files_and_files_are_hardlinked(shop, dest):
    a = shop.scratch().do(mkfile("foo", b"A", 0o755, mtime=T0 + 2 * S),
                          mkfile("a", b"A", 0o700, mtime=T0 + 4 * S, uid=7, gid=8))
    c = shop.scratch().do(mkfile("foo", b"C", 0o640, mtime=T0 + 6 * S, uid=1000, gid=1000))
    merged(dest, merge_chain(a, c))
    pic = assert_tree(dest, {
        "foo": F(b"C", 0o640, mtime=T0 + 6 * S, uid=1000, gid=1000, nlink=2),
        "a": F(b"A", 0o700, mtime=T0 + 4 * S, uid=7, gid=8, nlink=2),
    })
    # shared inodes with the sources (the source tree holds one link, the merge another)
    assert pic["foo"]["ino"] == ino(c.tree / "foo")
    assert pic["a"]["ino"] == ino(a.tree / "a")


def test_file_over_directory_removes_whole_subtree(shop, dest):
    a = shop.scratch().do(mkdir("d", 0o755), mkdir("d/sub"), mkfile("d/sub/x", b"x"),
                          mkfile("d/y", b"y"))
    b = shop.scratch().do(mkfile("d", b"file now", 0o600, mtime=T0))
    merged(dest, merge_chain(a, b))
    assert_tree(dest, {"d": F(b"file now", 0o600, mtime=T0)})


def test_symlink_over_directory_removes_subtree_and_is_not_followed(shop, dest, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"keep")
    a = shop.scratch().do(mkdir("d", 0o755), mkfile("d/x", b"x"))
    b = shop.scratch().do(symlink(str(outside), "d", mtime=T0))
    merged(dest, merge_chain(a, b))
    assert_tree(dest, {"d": L(str(outside), mtime=T0)})
    assert sorted(os.listdir(outside)) == ["keep"]


def test_directory_over_file_replaces_the_file(shop, dest):
    a = shop.scratch().do(mkfile("p", b"plain"))
    b = shop.scratch().do(mkdir("p", 0o750, uid=3, gid=4), mkfile("p/in", b"in"),
                          utime("p", T0))
    merged(dest, merge_chain(a, b))
    assert_tree(dest, {"p": D(0o750, uid=3, gid=4, mtime=T0), "p/in": F(b"in")})


def test_directory_over_directory_merges_and_later_metadata_wins(shop, dest):
    a = shop.scratch().do(mkdir("d", 0o700, uid=1, gid=1), mkfile("d/a", b"a"),
                          setxattr("d", "user.from", b"a"), setxattr("d", "user.only_a", b"1"),
                          utime("d", T0 + 1 * S))
    b = shop.scratch().do(mkdir("d", 0o2775, uid=2, gid=3), mkfile("d/b", b"b"),
                          setxattr("d", "user.from", b"b"), utime("d", T0 + 9 * S))
    merged(dest, merge_chain(a, b))
    assert_tree(dest, {
        "d": D(0o2775, uid=2, gid=3, mtime=T0 + 9 * S, xattrs={"user.from": b"b"}),
        "d/a": F(b"a"),
        "d/b": F(b"b"),
    })


def test_earlier_metadata_stays_when_later_layer_does_not_touch_the_directory(shop, dest):
    a = shop.scratch().do(mkdir("d", 0o700), mkfile("d/a", b"a"), utime("d", T0))
    b = shop.scratch().do(mkfile("other", b"o"))
    merged(dest, merge_chain(b, a))
    assert_tree(dest, {"d": D(0o700, mtime=T0), "d/a": F(b"a"), "other": F(b"o")})
    dest2 = dest.parent / "dest2"
    dest2.mkdir()
    merged(dest2, merge_chain(a, b))
    assert_tree(dest2, {"d": D(0o700, mtime=T0), "d/a": F(b"a"), "other": F(b"o")})


def test_parent_directories_of_a_change_take_the_layers_metadata(shop, dest):
    # An overlay-style layer lists only d/sub/f, yet d and d/sub are touched by it.
    a = shop.scratch().do(mkdir("d", 0o755), mkdir("d/sub", 0o755), mkfile("d/old", b"o"),
                          utime("d/sub", T0), utime("d", T0))
    b = shop.layer([("d/sub/f", "add")],
                   mkdir("d", 0o711, mtime=T0 + 5 * S, uid=5, gid=5),
                   mkdir("d/sub", 0o701, uid=6, gid=6), mkfile("d/sub/f", b"f"),
                   utime("d/sub", T0 + 6 * S), utime("d", T0 + 5 * S))
    merged(dest, [*a.chain, b])
    assert_tree(dest, {
        "d": D(0o711, uid=5, gid=5, mtime=T0 + 5 * S),
        "d/old": F(b"o"),
        "d/sub": D(0o701, uid=6, gid=6, mtime=T0 + 6 * S),
        "d/sub/f": F(b"f"),
    })


def test_directory_mtimes_are_restored_after_contents_are_written(shop, dest):
    a = shop.scratch().do(mkdir("d", 0o755), mkdir("d/e", 0o755), mkfile("d/e/f", b"f"),
                          utime("d/e", T0 + 1), utime("d", T0 + 2))
    b = shop.scratch().do(mkdir("d", 0o755), mkfile("d/g", b"g"), utime("d", T0 + 3))
    merged(dest, merge_chain(a, b))
    assert_tree(dest, {"d": D(mtime=T0 + 3), "d/e": D(mtime=T0 + 1), "d/e/f": F(b"f"),
                       "d/g": F(b"g")})


# ------------------------------------------------------------------------ deletions


def test_deletions_are_replayed_onto_earlier_inputs(shop, dest):
    # merge([c, b]) with b = a.rm("/foo") removes c's /foo
    a = shop.scratch().do(mkfile("foo", b"A"), mkfile("keep", b"k"))
    b = a.do(rm("foo"))
    c = shop.scratch().do(mkfile("foo", b"C"), mkfile("c", b"c"))
    merged(dest, merge_chain(c, b))
    assert_tree(dest, {"keep": F(b"k"), "c": F(b"c")})


def test_deleting_a_directory_removes_its_subtree(shop, dest):
    a = shop.scratch().do(mkdir("d"), mkdir("d/e"), mkfile("d/e/f"))
    b = a.do(rm("d"))
    c = shop.scratch().do(mkdir("d"), mkfile("d/c"))
    merged(dest, merge_chain(c, b))
    assert_tree(dest, {})


def test_deletions_parent_directory_is_still_created(shop, dest):
    a = shop.scratch().do(mkdir("dir", 0o750), mkfile("dir/x"), utime("dir", T0))
    b = a.do(rm("dir/x"), utime("dir", T0 + S))
    merged(dest, b.chain[1:])  # only the deleting layer
    assert_tree(dest, {"dir": D(0o750, mtime=T0 + S)})


def test_deleting_what_is_not_there_is_fine(shop, dest):
    layer = shop.layer([("ghost", "delete"), ("d", "modify"), ("d/ghost", "delete")],
                       mkdir("d", 0o700, mtime=T0))
    merged(dest, [layer])
    assert_tree(dest, {"d": D(0o700, mtime=T0)})


def test_nested_deletions_under_a_deleted_directory_are_skipped(shop, dest):
    a = shop.scratch().do(mkdir("d"), mkfile("d/f"), mkfile("top"))
    layer = shop.layer([("d", "delete"), ("d/f", "delete")])
    merged(dest, [*a.chain, layer])
    assert_tree(dest, {"top": F()})


def test_a_directory_made_for_a_deletion_is_removed_by_a_later_deletion(shop, dest):
    # layer 1's deletion of d/x makes d (its parent, with the layer's metadata); layer 2
    # deletes d itself, and layer 3 deletes e/y below a directory layer 2 made
    one = shop.layer([("d/x", "delete")], mkdir("d", 0o700, mtime=T0))
    two = shop.layer([("d", "delete"), ("e/y", "delete")], mkdir("e", 0o750, mtime=T0))
    three = shop.layer([("e", "delete")])
    merged(dest, [one, two])
    assert_tree(dest, {"e": D(0o750, mtime=T0)})
    other = dest.with_name("dest2")
    other.mkdir()
    merged(other, [one, two, three])
    assert_tree(other, {})


def test_what_a_later_layer_deletes_is_never_linked(shop, dest, monkeypatch):
    # merge-del's shape: a tree, the same tree with half deleted (and a directory gone), merged
    # onto a third input; the deleted entries are neither linked nor unlinked, the tree is exact
    a = shop.scratch().do(mkdir("data", 0o750), *[mkfile(f"data/f{i}", b"%d" % i) for i in range(6)],
                          mkdir("data/sub"), mkfile("data/sub/x"), utime("data", T0))
    b = a.do(rm("data/f0"), rm("data/f2"), rm("data/f4"), rm("data/sub"), utime("data", T0 + S))
    c = shop.scratch().do(mkdir("data"), mkfile("data/keep", b"k"), mkfile("data/f0", b"third"))
    linked: list[str] = []
    real = merge_mod._link

    def link(src, dst, *args, **kwargs):
        linked.append(os.path.relpath(dst, dest))
        return real(src, dst, *args, **kwargs)

    removed: list[str] = []
    real_remove = merge_mod._remove

    def remove(dst):
        removed.append(os.path.relpath(dst, dest))
        real_remove(dst)

    monkeypatch.setattr(merge_mod, "_link", link)
    monkeypatch.setattr(merge_mod, "_remove", remove)
    merged(dest, merge_chain(c, b))
    assert_tree(dest, {"data": D(0o750, mtime=T0 + S), "data/keep": F(b"k"),
                       "data/f1": F(b"1"), "data/f3": F(b"3"), "data/f5": F(b"5")})
    assert removed == []  # nothing was there to remove
    # (directories are tried as links too: the kernel refuses, and they are made fresh)
    assert sorted(p for p in linked if p != "data") == [
        "data/f1", "data/f3", "data/f5", "data/keep"]


def test_opaque_directory_expanded_deletions_do_not_hide_earlier_inputs(shop, dest):
    # b removes and recreates /dir (opaque on overlay): only what b's own lower had under
    # it is deleted; an earlier input's other files under /dir survive.
    base = shop.scratch().do(mkdir("dir"), mkfile("dir/a"), mkfile("dir/b"))
    b = base.do(rm("dir"), mkdir("dir"), mkfile("dir/e"))
    other = shop.scratch().do(mkdir("dir"), mkfile("dir/a"), mkfile("dir/d"))
    merged(dest, [*other.chain, b.chain[-1]])
    assert_tree(dest, {"dir": D(), "dir/d": F(), "dir/e": F()})


# ------------------------------------------------------------------------ symlinks


def test_writing_through_a_symlinked_parent_replaces_the_symlink(shop, dest, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    a = shop.scratch().do(symlink(str(outside), "d"), symlink("../..", "up"))
    b = shop.scratch().do(mkdir("d", 0o700), mkfile("d/f", b"f"), mkdir("up"),
                          mkfile("up/g", b"g"))
    merged(dest, merge_chain(a, b))
    assert_tree(dest, {"d": D(0o700), "d/f": F(b"f"), "up": D(), "up/g": F(b"g")})
    assert os.listdir(outside) == []


def test_deleting_through_a_symlinked_parent_does_not_follow_it(shop, dest):
    # TestDiffDeleteDoesNotFollowParentSymlink's shape: /foo -> /bar, then a layer whose
    # /foo is a directory deletes /foo/file
    link_foo = shop.scratch().do(mkdir("bar"), symlink("/bar", "foo"), mkfile("bar/file", b"1"))
    foo_dir = shop.scratch().do(mkdir("foo"), mkfile("foo/file"))
    del_file = foo_dir.do(rm("foo/file"))
    merged(dest, [*link_foo.chain, del_file.chain[-1]])
    assert_tree(dest, {"bar": D(), "bar/file": F(b"1"), "foo": D()})


def test_deleting_a_symlink_removes_only_the_link(shop, dest):
    a = shop.scratch().do(mkdir("bar"), mkfile("bar/f"), symlink("bar", "foo"))
    b = a.do(rm("foo"))
    merged(dest, b.chain)
    assert_tree(dest, {"bar": D(), "bar/f": F()})


def test_stale_directory_metadata_is_never_applied_through_a_symlink(shop, dest, tmp_path):
    outside = tmp_path / "outside"
    (outside / "b").mkdir(parents=True, mode=0o755)
    os.chmod(outside / "b", 0o755)
    before = os.lstat(outside / "b")
    a = shop.scratch().do(mkdir("a"), mkdir("a/b", 0o700), utime("a/b", T0))
    b = shop.scratch().do(symlink(str(outside), "a"))
    merged(dest, merge_chain(a, b))
    assert_tree(dest, {"a": L(str(outside))})
    after = os.lstat(outside / "b")
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)


# ------------------------------------------------------------------------ file types, links


def test_hardlinks_inside_one_layer_stay_hardlinks(shop, dest):
    a = shop.scratch().do(mkdir("dir"), mkfile("dir/1", b"1", 0o600), hardlink("dir/1", "dir/2"),
                          hardlink("dir/1", "top"))
    merged(dest, a.chain)
    assert_tree(dest, {"dir": D(), "dir/1": F(b"1", 0o600, nlink=6), "dir/2": H("dir/1"),
                       "top": H("dir/1")})


def test_later_overwrite_breaks_the_link_with_the_overwritten_path(shop, dest):
    c = shop.scratch().do(mkdir("bar"), mkfile("bar/A", b"C", 0o400), hardlink("bar/A", "hardlink"))
    a = shop.scratch().do(mkdir("bar"), mkfile("bar/A", b"A", 0o777))
    merged(dest, merge_chain(c, a))
    pic = assert_tree(dest, {"bar": D(), "bar/A": F(b"A", 0o777), "hardlink": F(b"C", 0o400)})
    assert pic["bar/A"]["ino"] != pic["hardlink"]["ino"]


def test_symlinks_and_special_files_are_hardlinked(shop, dest):
    a = shop.scratch().do(symlink("target", "sl", mtime=T0), mkfifo("fifo", 0o640),
                          mkchardev("null", 1, 3, 0o666), mkfile("f", b"f"))
    merged(dest, a.chain)
    pic = assert_tree(dest, {"sl": L("target", mtime=T0), "fifo": Fifo(0o640),
                             "null": Chr(1, 3, 0o666), "f": F(b"f")})
    for rel in ("sl", "fifo", "null", "f"):
        assert pic[rel]["ino"] == ino(a.tree / rel), rel


def test_file_xattrs_owner_and_setuid_come_with_the_inode(shop, dest):
    a = shop.scratch().do(mkfile("su", b"#!", 0o4755, uid=1000, gid=1000),
                          setxattr("su", "user.note", b"n"),
                          setxattr("su", "security.capability", cap_net_bind_service()))
    merged(dest, a.chain)
    assert_tree(dest, {"su": F(b"#!", 0o4755, uid=1000, gid=1000, xattrs={
        "user.note": b"n", "security.capability": cap_net_bind_service()})})


def test_overlay_private_xattrs_are_not_copied_to_directories(shop, dest):
    layer = shop.layer([("d", "add"), ("d/f", "add")], mkdir("d", 0o755, mtime=T0),
                       mkfile("d/f"), setxattr("d", "trusted.overlay.opaque", b"y"),
                       setxattr("d", "user.keep", b"k"), utime("d", T0))
    merged(dest, [layer])
    assert_tree(dest, {"d": D(mtime=T0, xattrs={"user.keep": b"k"}), "d/f": F()})


def test_layers_without_a_root_attribute_use_path(shop, dest):
    a = shop.scratch().do(mkdir("d", 0o700), mkfile("d/f", b"f"), symlink("d/f", "s"))
    b = a.do(rm("s"), mkfile("d/g", b"g"))
    merged(dest, [PathOnlyLayer(layer) for layer in b.chain])
    assert_tree(dest, {"d": D(0o700), "d/f": F(b"f"), "d/g": F(b"g")})


# ------------------------------------------------------------------------ inputs untouched


def test_inputs_are_untouched(shop, dest):
    a = shop.scratch().do(mkdir("d", 0o700), mkfile("d/f", b"f", 0o4711, uid=5),
                          setxattr("d/f", "user.x", b"1"), symlink("../..", "dontfollowme"))
    b = a.do(rm("d/f"), mkfile("d/g", b"g"), rm("dontfollowme"),
                mkdir("dontfollowme"), mkfile("dontfollowme/h"))
    c = shop.scratch().do(mkfile("d", b"file"), chown("d", 9, 9), chmod("d", 0o600))
    trees = [s.tree for s in (a, b, c)]
    before = [checksum(t) for t in trees]
    merged(dest, merge_chain(b, c, a))
    assert [checksum(t) for t in trees] == before
    # and writing into the merge result (new files, rm) does not reach the inputs
    (dest / "d" / "new").write_bytes(b"new")
    subprocess.run(["rm", "-rf", str(dest / "dontfollowme")], check=True)
    assert [checksum(t) for t in trees] == before


# ------------------------------------------------------------------------ copy fallback


def _raise_on_link(monkeypatch, err: int, dest: Path, only: set[str] | None = None):
    """Make every hardlink from a layer (not from dest itself) fail with err."""
    real = os.link

    def link(src, dst, *a, **kw):
        src = os.fspath(src)
        if src.startswith(str(dest) + "/"):
            return real(src, dst, *a, **kw)
        if only is None or os.path.basename(src) in only:
            raise OSError(err, os.strerror(err), os.fspath(src))
        return real(src, dst, *a, **kw)
    monkeypatch.setattr(merge_mod, "_link", link)


def _fallback_states(shop):
    a = shop.scratch().do(
        mkdir("d", 0o2750, uid=3, gid=4), mkfile("d/f", b"data", 0o4755, uid=1000, gid=1000),
        setxattr("d/f", "security.capability", cap_net_bind_service()),
        setxattr("d/f", "user.k", b"v"), hardlink("d/f", "d/f2"),
        symlink("d/f", "sl", mtime=T0), mkfifo("fifo", 0o600), mkchardev("null", 1, 3),
        sparse("holes", 8 << 20, {0: b"head", 5 << 20: b"middle"}, 0o640),
        mkfile("empty", b"", 0o444), utime("d/f", T0 + S), utime("d", T0 + 2 * S))
    b = a.do(rm("empty"), mkfile("b", b"b"))
    return a, b


def _fallback_expected():
    return {
        "d": D(0o2750, uid=3, gid=4, mtime=T0 + 2 * S),
        "d/f": F(b"data", 0o4755, uid=1000, gid=1000, mtime=T0 + S, nlink=2, xattrs={
            "security.capability": cap_net_bind_service(), "user.k": b"v"}),
        "d/f2": H("d/f"),
        "sl": L("d/f", mtime=T0),
        "fifo": Fifo(0o600),
        "null": Chr(1, 3),
        "holes": F(None, 0o640),
        "b": F(b"b"),
    }


@pytest.mark.parametrize("err", [errno.EXDEV, errno.EMLINK])
def test_forced_fallback_copies_with_full_metadata(shop, dest, monkeypatch, err):
    a, b = _fallback_states(shop)
    before = checksum(b.tree)
    _raise_on_link(monkeypatch, err, dest)
    merged(dest, b.chain)
    pic = assert_tree(dest, _fallback_expected())
    for rel in ("d/f", "sl", "fifo", "null", "holes", "b"):
        assert pic[rel]["ino"] != ino(b.tree / rel), rel
    holes = (dest / "holes").read_bytes()
    assert len(holes) == 8 << 20 and holes[:4] == b"head" and holes[5 << 20:(5 << 20) + 6] == b"middle"
    assert holes.count(0) == (8 << 20) - 10
    assert pic["holes"]["blocks"] * 512 < 1 << 20  # still sparse
    assert checksum(b.tree) == before


def test_emlink_falls_back_for_that_file_only(shop, dest, monkeypatch):
    a = shop.scratch().do(mkfile("full", b"F"), mkfile("ok", b"O"))
    _raise_on_link(monkeypatch, errno.EMLINK, dest, only={"full"})
    merged(dest, a.chain)
    pic = assert_tree(dest, {"full": F(b"F", nlink=1), "ok": F(b"O", nlink=2)})
    assert pic["ok"]["ino"] == ino(a.tree / "ok")
    assert pic["full"]["ino"] != ino(a.tree / "full")


@pytest.fixture
def tmpfs(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_source_on_another_filesystem_is_copied(tmpfs, dest):
    shop = Workshop(tmpfs / "w")
    a, b = _fallback_states(shop)
    xattr_ok = True
    try:
        os.setxattr(tmpfs, "user.probe", b"1")
    except OSError:
        xattr_ok = False  # old kernels: tmpfs has no user.* xattrs
    before = checksum(b.tree)
    merged(dest, b.chain)
    want = _fallback_expected()
    if not xattr_ok:
        want["d/f"].xattrs = None
    pic = assert_tree(dest, want)
    assert os.lstat(dest).st_dev != os.lstat(tmpfs).st_dev
    assert pic["d/f"]["ino"] != ino(b.tree / "d/f")
    assert checksum(b.tree) == before


# ------------------------------------------------------------------------ bad layers


def test_a_path_escaping_the_tree_is_refused(shop, dest):
    layer = shop.layer([("../evil", "add")])
    with pytest.raises(MergeError, match="not a plain relative path"):
        merged(dest, [layer])


def test_missing_layer_content_is_a_typed_error(shop, dest):
    layer = shop.layer([("d", "add"), ("d/ghost", "add")], mkdir("d"))
    with pytest.raises(MergeError, match="d/ghost"):
        merged(dest, [layer])


def test_picture_helper_sees_everything(shop):
    # the helpers the tests rely on must be able to fail
    a = shop.scratch().do(mkfile("f", b"x", 0o600))
    with pytest.raises(AssertionError):
        assert_tree(a.tree, {"f": F(b"y", 0o600)})
    with pytest.raises(AssertionError):
        assert_tree(a.tree, {"f": F(b"x", 0o644)})
    with pytest.raises(AssertionError):
        assert_tree(a.tree, {"f": F(b"x", 0o600), "g": F()})
    assert picture(a.tree)["f"]["kind"] == "file"
    assert stat.S_IMODE(os.lstat(a.tree / "f").st_mode) == 0o600
    assert Change("f", "add") in a.chain[0].changes()
    assert isinstance(a.chain[0], FakeLayer)
