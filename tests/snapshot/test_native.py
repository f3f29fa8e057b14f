"""native snapshotter: mutable children are full copies (trusted ones hardlink trees), the
diff is computed once at commit, and metadata survives every copy and comparison."""

from __future__ import annotations

import os
from pathlib import Path
import stat

import pytest
import xattr

from treehelp import commit_tree, read_tree
from llb.fsutil import copy_tree
from llb.snapshot.layers import Change


def test_untrusted_child_is_a_full_copy(native_store):
    store = native_store
    a = commit_tree(store, None, {"f": b"orig", "d/g": b"g"})
    m = store.prepare(a)
    with store.view(a) as ap, m.mount() as p:
        assert os.lstat(p / "f").st_ino != os.lstat(ap / "f").st_ino
        with open(p / "f", "r+b") as fh:  # writing in place must not reach the parent
            fh.write(b"XXXX")
    b = m.commit()
    with store.view(a) as ap:
        assert (ap / "f").read_bytes() == b"orig"
    assert b.layer_chain()[-1].changes() == [Change("f", "modify")]


def test_trusted_child_hardlinks_and_diffs_by_inode(native_store):
    store = native_store
    a = commit_tree(store, None, {"f": b"1", "d/g": b"2", "d/h": b"3"})
    m = store.prepare(a, trusted=True)
    with store.view(a) as ap, m.mount() as p:
        assert os.lstat(p / "d/g").st_ino == os.lstat(ap / "d/g").st_ino
        tmp = p / "d/.g.tmp"
        tmp.write_bytes(b"new")
        os.rename(tmp, p / "d/g")  # how trusted writers replace a file
        os.unlink(p / "f")
    b = m.commit()
    assert b.layer_chain()[-1].changes() == [Change("d/g", "modify"), Change("f", "delete")]
    with store.view(a) as ap:
        assert read_tree(ap) == {"f": b"1", "d": None, "d/g": b"2", "d/h": b"3"}
    layer = b.layer_chain()[-1]
    assert layer.path("d/g").read_bytes() == b"new"
    assert not layer.path("d/h").exists()  # the layer holds only what changed


def test_native_layer_dir_and_tree_share_inodes(native_store):
    store = native_store
    a = commit_tree(store, commit_tree(store, None, {"z": b"0"}), {"x/y": b"1"})
    with store.view(a) as p:
        assert os.lstat(a.layer_chain()[-1].path("x/y")).st_ino == os.lstat(p / "x/y").st_ino
    assert not (Path(store.root) / "snapshots" / a.layer_chain()[0].id / "tree").exists()


def _rich_tree(root):
    (root / "dir").mkdir()
    (root / "dir/setuid").write_bytes(b"s")
    os.chmod(root / "dir/setuid", 0o4755)
    (root / "sticky").mkdir()
    os.chmod(root / "sticky", 0o1777)
    (root / "owned").write_bytes(b"o")
    os.chown(root / "owned", 1234, 5678)
    (root / "empty").write_bytes(b"")
    with open(root / "sparse", "wb") as f:
        f.seek(8 << 20)
        f.write(b"end")
    os.symlink("dir/../nowhere", root / "link")
    os.link(root / "dir/setuid", root / "hard")
    os.mkfifo(root / "fifo")
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    xattr.setxattr(str(root / "owned"), "user.note", b"hello")
    xattr.setxattr(str(root / "dir"), "user.dirnote", b"d")
    try:
        xattr.setxattr(str(root / "empty"), "security.capability",
                       bytes.fromhex("0100000200200000000000000000000000000000"))
    except OSError:
        pass
    os.utime(root / "owned", ns=(1_000_000_123, 1_500_000_456))
    os.utime(root / "dir", ns=(2_000_000_001, 2_000_000_789))


def _meta(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            xs = {} if stat.S_ISLNK(st.st_mode) else {
                k: xattr.getxattr(p, k) for k in xattr.listxattr(p)}
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_rdev,
                        None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns, xs,
                        os.readlink(p) if stat.S_ISLNK(st.st_mode) else None)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="chown and mknod need root")
def test_copy_tree_keeps_all_metadata(tmp_path):
    src, dst, lnk = tmp_path / "src", tmp_path / "dst", tmp_path / "lnk"
    src.mkdir()
    _rich_tree(src)
    copy_tree(src, dst)
    assert _meta(dst) == _meta(src)
    assert os.lstat(dst / "dir").st_mtime_ns == 2_000_000_789
    assert os.lstat(dst / "hard").st_ino == os.lstat(dst / "dir/setuid").st_ino
    assert os.lstat(dst / "hard").st_ino != os.lstat(src / "hard").st_ino
    assert os.lstat(dst / "sparse").st_blocks * 512 < 1 << 20  # still sparse
    copy_tree(src, lnk, link=True)
    assert _meta(lnk) == _meta(src)
    assert os.lstat(lnk / "owned").st_ino == os.lstat(src / "owned").st_ino


@pytest.mark.skipif(os.geteuid() != 0, reason="chown and mknod need root")
def test_metadata_survives_snapshots_and_changes_are_seen(store):
    m = store.prepare(None)
    with m.mount() as p:
        _rich_tree(p)
    a = m.commit()
    with store.view(a) as p:
        want = _meta(p)
    m = store.prepare(a)
    with m.mount() as p:
        assert _meta(p) == want
        os.chmod(p / "owned", 0o600)
        os.chown(p / "empty", 7, 7)
        xattr.setxattr(str(p / "dir/setuid"), "user.new", b"1")
        st = os.lstat(p / "sparse")
        os.utime(p / "sparse", ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    b = m.commit()
    kinds = {c.path: c.kind for c in b.layer_chain()[-1].changes()}
    assert {k for k, v in kinds.items() if v != "modify"} == set()
    assert {"owned", "empty", "dir/setuid", "sparse"} <= set(kinds)
    assert "null" not in kinds and "fifo" not in kinds and "link" not in kinds
    with store.view(b) as p:
        assert stat.S_IMODE(os.lstat(p / "owned").st_mode) == 0o600
        assert os.lstat(p / "empty").st_uid == 7
        assert xattr.getxattr(str(p / "dir/setuid"), "user.new") == b"1"
        assert stat.S_IMODE(os.lstat(p / "sticky").st_mode) == 0o1777
        assert os.readlink(p / "link") == "dir/../nowhere"


def test_trusted_chain_takes_tree_and_parent_rebuilds(native_store):
    store = native_store
    a0 = commit_tree(store, None, {"d/x": b"1", "d/y": b"2"}, trusted=True)
    a = commit_tree(store, a0, {"f": b"f", "g/h": b"h"}, trusted=True)
    assert (Path(store.root) / "snapshots" / a.id / "tree").is_dir()
    m = store.prepare(a, trusted=True)
    assert not (Path(store.root) / "snapshots" / a.id / "tree").exists()  # taken, not copied
    with m.mount() as p:
        os.unlink(p / "f")
        os.mkdir(p / "f")                      # a file replaced by a directory
        (p / "f/inner").write_bytes(b"i")
        import shutil
        shutil.rmtree(p / "g")
        (p / "g").write_bytes(b"now a file")  # a directory replaced by a file
        tmp = p / "d/.x"
        tmp.write_bytes(b"new")
        os.rename(tmp, p / "d/x")
        os.chmod(p / "d", 0o700)
    b = m.commit()
    assert b.layer_chain()[-1].changes() == [
        Change("d", "modify"), Change("d/x", "modify"), Change("f", "modify"),
        Change("f/inner", "add"), Change("g", "modify")]
    with store.view(a) as p:  # rebuilt from a's layer
        assert read_tree(p) == {"d": None, "d/x": b"1", "d/y": b"2", "f": b"f", "g": None,
                                "g/h": b"h"}
    c = commit_tree(store, b, {"z": b"z"}, trusted=True)
    with store.view(c) as p:
        assert read_tree(p) == {"d": None, "d/x": b"new", "d/y": b"2", "f": None,
                                "f/inner": b"i", "g": b"now a file", "z": b"z"}
        assert stat.S_IMODE(os.lstat(p / "d").st_mode) == 0o700


def test_tree_being_read_is_never_taken(native_store):
    store = native_store
    a = commit_tree(store, commit_tree(store, None, {}, trusted=True), {"x": b"1"}, trusted=True)
    with store.view(a) as p:
        m = store.prepare(a, trusted=True)
        assert (p / "x").read_bytes() == b"1"
        assert (Path(store.root) / "snapshots" / a.id / "tree").is_dir()
        with m.mount() as mp:
            assert os.lstat(mp / "x").st_ino == os.lstat(p / "x").st_ino  # hardlinked
    b = m.commit()
    assert b.layer_chain()[-1].changes() == []


def test_discarded_trusted_child_leaves_parent_whole(native_store):
    store = native_store
    a = commit_tree(store, None, {"x": b"1", "d/y": b"2"}, trusted=True)
    m = store.prepare(a, trusted=True)
    with m.mount() as p:
        (p / "junk").write_bytes(b"j")
    m.discard()
    with store.view(a) as p:
        assert read_tree(p) == {"x": b"1", "d": None, "d/y": b"2"}
    m2 = store.prepare(a, trusted=True)
    with m2.mount() as p:
        assert read_tree(p) == {"x": b"1", "d": None, "d/y": b"2"}
    m2.discard()


def test_copied_child_reports_only_what_the_writer_touched(store):
    """An untrusted child: untouched copies are no change; renames, rewrites with the
    same size, and files restored to a tar-like whole-second mtime are seen."""
    a = commit_tree(store, None, {f"f{i}": b"same" for i in range(20)})
    m = store.prepare(a)
    with m.mount() as p:
        os.rename(p / "f1", p / "moved")
        (p / "f2").write_bytes(b"diff")           # same size, new bytes
        st = os.lstat(p / "f3")
        with open(p / "f3", "r+b") as fh:         # rewritten, mtime put back
            fh.write(b"DIFF")
        os.utime(p / "f3", ns=(st.st_atime_ns, st.st_mtime_ns))
        os.utime(p / "f4", ns=(0, 1_700_000_000_000_000_000))   # whole second
    b = m.commit()
    kinds = {c.path: c.kind for c in b.layer_chain()[-1].changes()}
    assert kinds["f1"] == "delete" and kinds["moved"] == "add" and kinds["f2"] == "modify"
    assert kinds["f4"] == "modify"
    # f3 kept its size and nanosecond mtime: like containerd's differ, its bytes are not
    # read, so it counts as unchanged (documented limit of metadata-based differs)
    assert set(kinds) == {"f1", "moved", "f2", "f4"}


@pytest.mark.skipif(os.geteuid() != 0, reason="chown and mknod need root")
def test_copy_tree_of_a_big_tree_keeps_metadata_and_owners(tmp_path):
    """Enough entries for the threaded copy; owners that a new entry would not get by
    itself (a setgid directory of another group, root's entries inside it, other uids)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    _rich_tree(src)
    (src / "sg").mkdir()
    os.chown(src / "sg", 0, 4321)
    os.chmod(src / "sg", 0o2775)
    for i in range(300):
        p = src / ("sg" if i % 2 else "dir") / f"e{i}"
        if i % 3 == 0:
            os.symlink(f"t{i}", p)
        else:
            p.write_bytes(b"%d" % i)
        if i % 5 == 0:
            os.chown(p, 0, 0, follow_symlinks=False)  # root's group inside the setgid dir
        elif i % 7 == 0:
            os.chown(p, 1000 + i, 2000 + i, follow_symlinks=False)
    fresh: dict[int, int] = {}
    copy_tree(src, dst, ctimes=fresh)
    assert _meta(dst) == _meta(src)
    copied = {os.lstat(os.path.join(d, n)).st_ino
              for d, _, names in os.walk(dst) for n in names}
    assert copied <= set(fresh)
    assert os.lstat(dst / "hard").st_ino == os.lstat(dst / "dir/setuid").st_ino
