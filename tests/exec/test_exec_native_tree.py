"""The native snapshotter's untrusted children (exec rootfs) take a private parent tree
instead of copying it: the parent's layer is unshared first, views and trusted children
make a tree shared again, and the diff of a taken tree is what the copy differ finds."""

from __future__ import annotations

import os
from pathlib import Path

import xattr

from llb.snapshot import Store
from llb.snapshot.layers import Change


def _commit(store, parent, write, *, trusted=False):
    m = store.prepare(parent, trusted=trusted)
    with m.mount() as p:
        write(Path(p))
    return m.commit()


def _files(store, ref) -> dict[str, str]:
    out = {}
    with store.view(ref) as root:
        for dirpath, _, filenames in os.walk(root):
            for n in filenames:
                p = os.path.join(dirpath, n)
                out[os.path.relpath(p, root)] = Path(p).read_text()
    return out


def _base(store):
    def write(p):
        (p / "d").mkdir()
        (p / "d/g").write_text("g")
        (p / "f").write_text("base")
        (p / "h").write_text("h")
    return _commit(store, None, write)


def _tree_dir(store, ref) -> Path:
    return Path(store.root) / "snapshots" / ref.id / "tree"


def test_untrusted_child_takes_a_private_tree_and_unshares_the_layer(tmp_path):
    store = Store(tmp_path / "root", "native")
    base = _base(store)

    def first(p):
        (p / "new").write_text("a")
        (p / "f").write_text("A")
        os.link(p / "new", p / "new-link")
    a = _commit(store, base, first)  # a copy of base: a's tree is private
    layer_new = a.layer_chain()[-1].path("new")
    assert _tree_dir(store, a).is_dir()
    m = store.prepare(a)
    assert not _tree_dir(store, a).exists()  # taken, not copied
    with m.mount() as p:
        ino = os.lstat(p / "new").st_ino
        assert ino != os.lstat(layer_new).st_ino  # a's layer entries were copied
        assert os.lstat(p / "new-link").st_ino == ino  # hardlinks among them kept
        with open(p / "new", "r+") as fh:  # in place: must not reach a's layer
            fh.write("X")
        with open(p / "d/g", "r+") as fh:
            fh.write("G")
        os.rename(p / "h", p / "h.tmp")  # moved away and back: no change
        os.rename(p / "h.tmp", p / "h")
        os.chmod(p / "f", 0o600)
        xattr.setxattr(str(p / "d"), "user.k", b"v")
    b = m.commit()
    assert b.layer_chain()[-1].changes() == [
        Change("d", "modify"), Change("d/g", "modify"), Change("f", "modify"),
        Change("new", "modify"), Change("new-link", "modify")]
    assert layer_new.read_text() == "a"
    assert _files(store, a) == {"d/g": "g", "f": "A", "h": "h", "new": "a", "new-link": "a"}
    assert _files(store, b) == {"d/g": "G", "f": "A", "h": "h", "new": "X", "new-link": "X"}
    assert _files(store, base) == {"d/g": "g", "f": "base", "h": "h"}


def test_a_chain_takes_every_step_and_each_layer_keeps_its_content(tmp_path):
    store = Store(tmp_path / "root", "native")
    ref = _commit(store, _base(store), lambda p: None)
    refs = []
    for i in range(4):
        def step(p, i=i):
            with open(p / "f", "a") as fh:  # appended in place every step
                fh.write(str(i))
            (p / f"n{i}").write_text(str(i))
        m = store.prepare(ref)
        assert i == 0 or not _tree_dir(store, ref).exists()
        with m.mount() as p:
            step(Path(p))
        ref = m.commit()
        refs.append(ref)
        assert ref.layer_chain()[-1].changes() == [Change("f", "modify"),
                                                   Change(f"n{i}", "add")]
    for i, r in enumerate(refs):
        files = _files(store, r)
        assert files["f"] == "base" + "".join(str(k) for k in range(i + 1))
        assert sorted(files) == sorted(["d/g", "f", "h"] + [f"n{k}" for k in range(i + 1)])


def test_viewed_or_trusted_shared_tree_is_copied(tmp_path):
    store = Store(tmp_path / "root", "native")
    a = _commit(store, _base(store), lambda p: (p / "x").write_text("x"))
    with store.view(a):
        pass
    m = store.prepare(a)  # a view may have linked a's inodes elsewhere: copied
    assert _tree_dir(store, a).is_dir()
    m.discard()
    b = _commit(store, a, lambda p: (p / "y").write_text("y"))
    _commit(store, b, lambda p: None, trusted=True)  # a trusted child shares b's inodes
    m = store.prepare(b)
    with m.mount() as p:
        with open(p / "x", "r+") as fh:
            fh.write("X")
    m.commit()
    assert _files(store, b) == {"d/g": "g", "f": "base", "h": "h", "x": "x", "y": "y"}


def test_a_whole_second_file_rewritten_in_place_counts_as_modified(tmp_path):
    """The copy differ would compare such a file's bytes; the old bytes of a taken tree
    are gone, so a same-size, same-mtime rewrite of it is a change."""
    store = Store(tmp_path / "root", "native")

    def first(p):
        (p / "t").write_text("tar1")
        os.utime(p / "t", ns=(0, 1_700_000_000_000_000_000))
        (p / "n").write_text("ns-1")
    a = _commit(store, _base(store), first)
    m = store.prepare(a)
    with m.mount() as p:
        for name in ("t", "n"):
            st = os.lstat(p / name)
            with open(p / name, "r+") as fh:
                fh.write("XXXX")
            os.utime(p / name, ns=(st.st_atime_ns, st.st_mtime_ns))
    b = m.commit()
    # "n" (nanosecond mtime, same size) is the metadata differs' documented blind spot
    assert b.layer_chain()[-1].changes() == [Change("t", "modify")]


def test_records_carried_down_a_chain_still_see_every_kind_of_change(tmp_path):
    """From the third step on, a taken tree's records come from its parent's commit:
    an xattr set in place is a change, a no-op chmod or a move away and back is not."""
    store = Store(tmp_path / "root", "native")
    ref = _commit(store, _base(store), lambda p: None)  # a copy
    ref = _commit(store, ref, lambda p: (p / "x").write_text("x"))  # takes: records walked

    def third(p):
        xattr.setxattr(str(p / "x"), "user.k", b"v")
        os.chmod(p / "f", os.lstat(p / "f").st_mode & 0o7777)
        os.rename(p / "d/g", p / "g.tmp")
        os.rename(p / "g.tmp", p / "d/g")
    m = store.prepare(ref)
    assert not _tree_dir(store, ref).exists()  # taken again, with carried records
    with m.mount() as p:
        third(Path(p))
    c = m.commit()
    assert c.layer_chain()[-1].changes() == [Change("x", "modify")]
    with store.view(c) as p:
        assert xattr.getxattr(str(p / "x"), "user.k") == b"v"
    with store.view(ref) as p:
        assert "user.k" not in xattr.listxattr(str(p / "x"))


def test_a_tree_another_store_viewed_is_copied(tmp_path):
    """Privacy holds across processes (here two stores on one root): a tree another store
    viewed, perhaps linking its inodes into a snapshot of its own, is never taken."""
    store = Store(tmp_path / "root", "native")
    a = _commit(store, _base(store), lambda p: (p / "x").write_text("x"))
    with Store(tmp_path / "root", "native") as other:
        with other.view(other.get(a.id)) as p:
            assert (p / "x").read_text() == "x"
        m = store.prepare(a)
        assert _tree_dir(store, a).is_dir()  # copied, not taken
        with m.mount() as p:
            with open(p / "x", "r+") as fh:
                fh.write("X")
        m.commit()
        assert _files(other, other.get(a.id))["x"] == "x"


def test_a_tree_committed_by_another_store_is_taken(tmp_path):
    store = Store(tmp_path / "root", "native")
    a = _commit(store, _base(store), lambda p: (p / "x").write_text("x"))
    with Store(tmp_path / "root", "native") as other:
        m = other.prepare(other.get(a.id))
        assert not _tree_dir(store, a).exists()  # the mark says private: taken
        with m.mount() as p:
            (p / "x").write_text("X")
        b = m.commit()
        assert b.layer_chain()[-1].changes() == [Change("x", "modify")]
    assert _files(store, a)["x"] == "x"


def test_another_name_of_an_added_hardlink_is_unshared_too(tmp_path):
    """`ln old new` adds only `new` to the layer, yet `old` is the same inode: the child
    that takes the tree must not write the layer's `new` through `old`."""
    store = Store(tmp_path / "root", "native")
    a = _commit(store, _base(store), lambda p: os.link(p / "h", p / "h2"))
    assert [c.path for c in a.layer_chain()[-1].changes()] == ["h2"]

    def write_h_link_f(p):
        with open(p / "h", "r+") as fh:  # the tree was taken: first take, map walked
            fh.write("XX")
        os.link(p / "f", p / "f2")
    b = _commit(store, a, write_h_link_f)
    assert a.layer_chain()[-1].path("h2").read_text() == "h"
    m = store.prepare(b)  # taken again, records carried from b's commit
    assert not _tree_dir(store, b).exists()
    with m.mount() as p:
        with open(p / "f", "r+") as fh:
            fh.write("XX")
    m.discard()
    assert b.layer_chain()[-1].path("f2").read_text() == "base"
    assert _files(store, b)["f2"] == "base" and _files(store, a)["h2"] == "h"
