"""Every merge rule as its own case through the real Store (store.merge), for both
snapshotters, with exact expected trees: contents, modes, owners, mtimes, xattrs, links.
Plus: merged files share their source's inode (unless the copy fallback ran), a forced
fallback gives the same tree, inputs are never changed, and neither is anything when a
snapshot prepared on a merge is written."""

from __future__ import annotations

import errno
import os
import struct
import pytest

import llb.snapshot.merge as merge_mod
from mergetree import (T0, Built, Chr, D, F, Fifo, H, L, checksum, chmod, chown, hardlink,
                       merge, mkchardev, mkdir, mkfifo, mkfile, overwrite, rm, setxattr, sparse,
                       symlink, utime)

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: chown, mknod, security.* xattrs")

S = 1_000_000_000


def _cap() -> bytes:
    return struct.pack("<IIIII", 0x02000000 | 0x1, 1 << 10, 0, 0, 0)


# Each rule: (store, tmp) -> (merged state, exact expected tree)
RULES = {}


def rule(fn):
    RULES[fn.__name__] = fn
    return fn


@rule
def later_layer_wins(store, tmp):
    s = Built(store)
    a = s.do(mkfile("f", b"A", 0o755, uid=1, gid=2, mtime=T0 + S), mkfile("a", b"a"))
    c = s.do(mkfile("f", b"C", 0o640, uid=1000, gid=1000, mtime=T0 + 2 * S))
    return merge(a, c), {"f": F(b"C", 0o640, uid=1000, gid=1000, mtime=T0 + 2 * S),
                         "a": F(b"a")}


@rule
def file_over_directory_replaces_subtree(store, tmp):
    s = Built(store)
    a = s.do(mkdir("d"), mkdir("d/e"), mkfile("d/e/f"), mkfile("d/g"))
    b = s.do(mkfile("d", b"file", 0o600, mtime=T0))
    return merge(a, b), {"d": F(b"file", 0o600, mtime=T0)}


@rule
def symlink_over_directory_replaces_subtree(store, tmp):
    s = Built(store)
    a = s.do(mkdir("d"), mkfile("d/f"))
    b = s.do(symlink(str(tmp), "d", mtime=T0))
    return merge(a, b), {"d": L(str(tmp), mtime=T0)}


@rule
def directory_over_file_replaces_it(store, tmp):
    s = Built(store)
    a = s.do(mkfile("p", b"plain"))
    b = s.do(mkdir("p", 0o750, uid=3, gid=4), mkfile("p/in", b"in"), utime("p", T0))
    return merge(a, b), {"p": D(0o750, uid=3, gid=4, mtime=T0), "p/in": F(b"in")}


@rule
def directory_over_directory_merges_later_metadata_wins(store, tmp):
    s = Built(store)
    a = s.do(mkdir("d", 0o700, uid=1, gid=1), mkfile("d/a", b"a"),
             setxattr("d", "user.from", b"a"), setxattr("d", "user.only_a", b"1"),
             utime("d", T0 + S))
    b = s.do(mkdir("d", 0o2775, uid=2, gid=3), mkfile("d/b", b"b"),
             setxattr("d", "user.from", b"b"), utime("d", T0 + 9 * S))
    return merge(a, b), {"d": D(0o2775, uid=2, gid=3, mtime=T0 + 9 * S,
                                xattrs={"user.from": b"b"}),
                         "d/a": F(b"a"), "d/b": F(b"b")}


@rule
def untouched_directory_keeps_earlier_metadata(store, tmp):
    s = Built(store)
    a = s.do(mkdir("d", 0o700, uid=9, gid=9), mkfile("d/a"), utime("d", T0))
    b = s.do(mkfile("other"))
    return merge(a, b), {"d": D(0o700, uid=9, gid=9, mtime=T0), "d/a": F(), "other": F()}


@rule
def parent_of_a_change_takes_the_layers_metadata(store, tmp):
    s = Built(store)
    a = s.do(mkdir("d", 0o700, uid=1, gid=1), mkfile("d/old"), utime("d", T0))
    lower = s.do(mkdir("d", 0o711, uid=5, gid=5), utime("d", T0 + 5 * S))
    # d is only the parent of the one change of this layer (its own metadata as in lower)
    only_f = lower.diff(lower.do(mkfile("d/f", b"f"), utime("d", T0 + 5 * S)))
    return merge(a, only_f), {"d": D(0o711, uid=5, gid=5, mtime=T0 + 5 * S),
                              "d/old": F(), "d/f": F(b"f")}


@rule
def directory_mtime_restored_after_contents(store, tmp):
    s = Built(store)
    a = s.do(mkdir("d"), mkdir("d/e"), mkfile("d/e/f"), utime("d/e", T0 + 1), utime("d", T0 + 2))
    b = s.do(mkdir("d"), mkfile("d/g"), utime("d", T0 + 3))
    return merge(a, b), {"d": D(mtime=T0 + 3), "d/e": D(mtime=T0 + 1), "d/e/f": F(),
                         "d/g": F()}


@rule
def deletions_are_replayed(store, tmp):
    s = Built(store)
    b = s.do(mkfile("foo", b"A"), mkfile("keep", b"k")).do(rm("foo"))
    c = s.do(mkfile("foo", b"C"), mkfile("c", b"c"))
    return merge(c, b), {"keep": F(b"k"), "c": F(b"c")}


@rule
def directory_deletion_is_replayed(store, tmp):
    s = Built(store)
    b = s.do(mkdir("d"), mkdir("d/e"), mkfile("d/e/f")).do(rm("d"))
    c = s.do(mkdir("d"), mkfile("d/c"), mkfile("top"))
    return merge(c, b), {"top": F()}


@rule
def deletions_parent_directory_is_created(store, tmp):
    s = Built(store)
    lower = s.do(mkdir("dir", 0o750, uid=4, gid=4), mkfile("dir/x"), utime("dir", T0))
    deleting = lower.diff(lower.do(rm("dir/x"), utime("dir", T0 + S)))
    return merge(s.do(mkfile("other")), deleting), {
        "other": F(), "dir": D(0o750, uid=4, gid=4, mtime=T0 + S)}


@rule
def opaque_directory_does_not_hide_earlier_inputs(store, tmp):
    s = Built(store)
    base = s.do(mkdir("dir"), mkfile("dir/a"), mkfile("dir/b"))
    recreated = base.diff(base.do(rm("dir"), mkdir("dir"), mkfile("dir/e")))
    other = s.do(mkdir("dir"), mkfile("dir/a"), mkfile("dir/d"))
    return merge(other, recreated), {"dir": D(), "dir/d": F(), "dir/e": F()}


@rule
def symlinked_parent_is_replaced_not_followed(store, tmp):
    s = Built(store)
    a = s.do(symlink(str(tmp), "d"), symlink("../..", "up"))
    b = s.do(mkdir("d", 0o700), mkfile("d/f", b"f"), mkdir("up"), mkfile("up/g", b"g"))
    return merge(a, b), {"d": D(0o700), "d/f": F(b"f"), "up": D(), "up/g": F(b"g")}


@rule
def deletion_under_symlinked_parent_does_not_follow(store, tmp):
    s = Built(store)
    link_foo = s.do(mkdir("bar"), symlink("/bar", "foo"), mkfile("bar/file", b"1"))
    foo_dir = s.do(mkdir("foo"), mkfile("foo/file"))
    return merge(link_foo, foo_dir.diff(foo_dir.do(rm("foo/file")))), {
        "bar": D(), "bar/file": F(b"1"), "foo": D()}


@rule
def deleting_a_symlink_removes_only_the_link(store, tmp):
    s = Built(store)
    a = s.do(mkdir("bar"), mkfile("bar/f", b"f"), symlink("bar", "foo"))
    other = s.do(mkdir("bar"), mkfile("bar/g", b"g"))
    return merge(other, a.do(rm("foo"))), {"bar": D(), "bar/f": F(b"f"), "bar/g": F(b"g")}


@rule
def hardlinks_inside_a_layer_stay_hardlinks(store, tmp):
    s = Built(store)
    a = s.do(mkdir("dir"), mkfile("dir/1", b"1", 0o600), hardlink("dir/1", "dir/2"),
             hardlink("dir/1", "top"))
    return merge(s.do(mkfile("x")), a), {"x": F(), "dir": D(), "dir/1": F(b"1", 0o600),
                                         "dir/2": H("dir/1"), "top": H("dir/1")}


@rule
def special_files_and_metadata_fidelity(store, tmp):
    s = Built(store)
    a = s.do(mkfile("su", b"#!", 0o4755, uid=1000, gid=1000),
             setxattr("su", "user.note", b"n"), setxattr("su", "security.capability", _cap()),
             utime("su", T0 + 123),
             mkdir("tmp", 0o1777), mkdir("shared", 0o2770, uid=7, gid=8),
             setxattr("shared", "user.d", b"dir"), utime("shared", T0 + 7),
             symlink("su", "sl", mtime=T0 + 5), mkfifo("fifo", 0o640),
             mkchardev("null", 1, 3, 0o666), mkfile("empty", b"", 0o400),
             sparse("holes", 4 << 20, {1 << 20: b"data"}, 0o644))
    return merge(s.do(mkfile("x")), a), {
        "x": F(),
        "su": F(b"#!", 0o4755, uid=1000, gid=1000, mtime=T0 + 123,
                xattrs={"user.note": b"n", "security.capability": _cap()}),
        "tmp": D(0o1777), "shared": D(0o2770, uid=7, gid=8, mtime=T0 + 7,
                                      xattrs={"user.d": b"dir"}),
        "sl": L("su", mtime=T0 + 5), "fifo": Fifo(0o640), "null": Chr(1, 3, 0o666),
        "empty": F(b"", 0o400), "holes": F(None, 0o644),
    }


@rule
def nested_merge_equals_flat_merge(store, tmp):
    s = Built(store)
    a = s.do(mkdir("d"), mkfile("d/a", b"a"), mkfile("x", b"a"))
    b = s.do(mkfile("x", b"b")).do(rm("x"))
    c = s.do(mkdir("d", 0o700), mkfile("d/c", b"c"))
    flat = merge(a, b, c)
    nested = merge(merge(a, b), c)
    flat.same_as(nested)
    return nested, {"d": D(0o700), "d/a": F(b"a"), "d/c": F(b"c")}


@pytest.fixture(params=["link", "copy"])
def linking(request, monkeypatch):
    """Hardlinks as usual, or every cross-snapshot link refused with EXDEV (the copy
    fallback a source on another filesystem gets)."""
    if request.param == "copy":
        def refuse(*a, **kw):
            raise OSError(errno.EXDEV, "links refused by the test")
        monkeypatch.setattr(merge_mod, "_link", refuse)
    return request.param


@pytest.mark.parametrize("name", sorted(RULES))
def test_merge_rule(store, tmp_path, linking, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    merged, expected = RULES[name](store, outside)
    pic = merged.check(expected)
    assert os.listdir(outside) == []  # nothing was written through a symlink
    # every non-directory is a hardlink of its layer's entry, or (fallback) a new inode
    sources = _layer_inodes(merged)
    for rel, info in pic.items():
        if info["kind"] == "dir":
            assert info["ino"] not in sources.values()
            continue
        if linking == "link":
            assert info["ino"] == sources[rel], f"{rel} is not linked to its source"
        else:
            assert info["ino"] not in set(sources.values()), f"{rel} was linked, not copied"
    if "holes" in pic:
        assert pic["holes"]["blocks"] * 512 < 1 << 20, "sparse file lost its holes"
        assert _read(merged, "holes")[1 << 20:(1 << 20) + 4] == b"data"


def _layer_inodes(state: Built) -> dict[str, int]:
    """rel -> inode of the entry the last layer of state's chain writing rel holds."""
    out: dict[str, int] = {}
    for layer in state.ref.layer_chain():
        for ch in layer.changes():
            if ch.kind != "delete":
                out[ch.path] = os.lstat(layer.path(ch.path)).st_ino
    return out


def _read(state: Built, rel: str) -> bytes:
    with state.store.view(state.ref) as p:
        return (p / rel).read_bytes()


def _sum(state: Built) -> str:
    with state.store.view(state.ref) as p:
        return checksum(p)


def test_inputs_never_change_and_children_of_a_merge_do_not_reach_them(store):
    s = Built(store)
    a = s.do(mkdir("d", 0o755), mkfile("d/f", b"f", 0o644), mkfile("d/keep", b"k"),
             setxattr("d/f", "user.x", b"1"), symlink("../..", "up"), mkfifo("p"))
    b = a.do(rm("d/keep"), mkfile("d/g", b"g"))
    c = s.do(mkdir("e"), mkfile("e/h", b"h", 0o600, uid=5), hardlink("e/h", "e/h2"))
    inputs = (a, b, c)
    before = [_sum(x) for x in inputs]
    m = merge(b, c, a)
    merged_before = _sum(m)
    assert [_sum(x) for x in inputs] == before
    # a child of the merge writes in place, changes metadata, removes and adds
    child = m.do(overwrite("d/f", b"changed"), chmod("d/g", 0o600), chown("e/h", 7, 7),
                 setxattr("e/h2", "user.y", b"2"), utime("d/f", T0), rm("up"),
                 mkfile("d/new"), rm("e"))
    child.check({"d": D(), "d/f": F(b"changed", mtime=T0, xattrs={"user.x": b"1"}),
                 "d/g": F(b"g", 0o600), "d/keep": F(b"k"), "d/new": F(), "p": Fifo()})
    assert [_sum(x) for x in inputs] == before
    assert _sum(m) == merged_before


def test_merge_survives_prune_while_its_ref_lives(store):
    s = Built(store)
    a = s.do(mkfile("a", b"a"))
    b = s.do(mkdir("d"), mkfile("d/b", b"b"))
    m = merge(a, b)
    del a, b
    store.prune()
    m.check({"a": F(b"a"), "d": D(), "d/b": F(b"b")})
    m.do(mkfile("c")).check({"a": F(b"a"), "d": D(), "d/b": F(b"b"), "c": F()})
