"""Test helpers for merges: build layer chains step by step on disk (native style: each
step's full tree, its changes found by comparing it with the step before), take a tree's
exact picture, and compare it with an expected one.

A `Steps` chain stands in for a snapshot in unit tests of `apply_layers`; tests through the
real store use the same tree operations and pictures.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from llb.snapshot.layers import Change, path_key


T0 = 1_600_000_000_000_000_000  # a fixed epoch (ns) for mtimes tests pin


# ---------------------------------------------------------------- tree operations (appliers)

Op = Callable[[Path], None]


def _times(p: Path, mtime: int | None) -> None:
    if mtime is not None:
        os.utime(p, ns=(mtime, mtime), follow_symlinks=False)


def mkfile(rel: str, data: bytes = b"", mode: int = 0o644, *, mtime: int | None = None,
           uid: int = 0, gid: int = 0) -> Op:
    def op(root: Path) -> None:
        p = root / rel
        if p.is_symlink() or p.exists():
            p.unlink()
        p.write_bytes(data)
        os.chown(p, uid, gid)
        os.chmod(p, mode)
        _times(p, mtime)
    return op


def mkdir(rel: str, mode: int = 0o755, *, mtime: int | None = None, uid: int = 0,
          gid: int = 0) -> Op:
    def op(root: Path) -> None:
        p = root / rel
        if not p.is_dir() or p.is_symlink():
            p.mkdir()
        os.chown(p, uid, gid)
        os.chmod(p, mode)
        _times(p, mtime)
    return op


def symlink(target: str, rel: str, *, mtime: int | None = None) -> Op:
    def op(root: Path) -> None:
        os.symlink(target, root / rel)
        _times(root / rel, mtime)
    return op


def hardlink(existing: str, rel: str) -> Op:
    def op(root: Path) -> None:
        os.link(root / existing, root / rel, follow_symlinks=False)
    return op


def rm(rel: str) -> Op:
    """Remove rel and all below it (like `rm -rf`), never following a symlink."""
    def op(root: Path) -> None:
        p = root / rel
        if p.is_dir() and not p.is_symlink():
            subprocess.run(["rm", "-rf", "--", str(p)], check=True)
        elif p.is_symlink() or p.exists():
            p.unlink()
    return op


def overwrite(rel: str, data: bytes) -> Op:
    """Write into the existing file in place (same inode, like `echo > f`)."""
    def op(root: Path) -> None:
        with open(root / rel, "r+b") as f:
            f.write(data)
            f.truncate()
    return op


def rename(old: str, new: str) -> Op:
    def op(root: Path) -> None:
        os.rename(root / old, root / new)
    return op


def chmod(rel: str, mode: int) -> Op:
    return lambda root: os.chmod(root / rel, mode)


def chown(rel: str, uid: int, gid: int) -> Op:
    return lambda root: os.chown(root / rel, uid, gid, follow_symlinks=False)


def setxattr(rel: str, name: str, value: bytes) -> Op:
    return lambda root: os.setxattr(root / rel, name, value, follow_symlinks=False)


def utime(rel: str, mtime: int) -> Op:
    return lambda root: _times(root / rel, mtime)


def mkfifo(rel: str, mode: int = 0o644) -> Op:
    def op(root: Path) -> None:
        os.mkfifo(root / rel)
        os.chmod(root / rel, mode)
    return op


def mkchardev(rel: str, major: int, minor: int, mode: int = 0o644) -> Op:
    def op(root: Path) -> None:
        os.mknod(root / rel, stat.S_IFCHR | mode, os.makedev(major, minor))
        os.chmod(root / rel, mode)
    return op


def sparse(rel: str, size: int, chunks: dict[int, bytes], mode: int = 0o644) -> Op:
    """A file of `size` bytes that is all hole but for `chunks` (offset -> data)."""
    def op(root: Path) -> None:
        with open(root / rel, "wb") as f:
            for off, data in chunks.items():
                f.seek(off)
                f.write(data)
            f.truncate(size)
        os.chmod(root / rel, mode)
    return op


def apply_ops(root: Path, ops: list[Op] | tuple[Op, ...]) -> None:
    for op in ops:
        op(root)


# ---------------------------------------------------------------- fake layers and chains


class FakeLayer:
    """A Layer (duck-typed like snapshot.layers.Layer): entries live under `root`."""

    def __init__(self, id: str, root: Path, changes: list[Change]):
        self.id = id
        self.root = root
        self._changes = sorted(changes, key=lambda c: path_key(c.path))

    def changes(self) -> list[Change]:
        return self._changes

    def path(self, rel: str) -> Path:
        return self.root / rel


class PathOnlyLayer(FakeLayer):
    """The same layer without a `root`: forces apply_layers through `path()`."""

    def __init__(self, layer: FakeLayer):
        self.id = layer.id
        self._root = layer.root
        self._changes = layer._changes

    def path(self, rel: str) -> Path:
        return self._root / rel

    def __getattribute__(self, name: str):
        if name == "root":
            raise AttributeError(name)
        return object.__getattribute__(self, name)


class Workshop:
    """Makes step trees under one temporary directory."""

    def __init__(self, base: Path):
        self.base = base
        self.n = 0

    def new_dir(self, prefix: str = "t") -> Path:
        self.n += 1
        p = self.base / f"{prefix}{self.n}"
        p.mkdir(parents=True)
        return p

    def scratch(self) -> "Steps":
        return Steps(self, None, [])

    def layer(self, changes: list[tuple[str, str]], *ops: Op) -> FakeLayer:
        """A hand-made layer: a tree made by ops and the change list given verbatim
        (overlay-upperdir style: only what changed is on disk)."""
        root = self.new_dir("l")
        apply_ops(root, ops)
        return FakeLayer(root.name, root, [Change(p, k) for p, k in changes])


@dataclass
class Steps:
    """A state built like a BuildKit File() chain: each `do` is one layer."""

    shop: Workshop
    tree: Path | None
    chain: list[FakeLayer] = field(default_factory=list)

    def do(self, *ops: Op) -> "Steps":
        new = self.shop.new_dir("s")
        if self.tree is not None:
            subprocess.run(["cp", "-a", f"{self.tree}/.", str(new)], check=True)
        apply_ops(new, ops)
        layer = FakeLayer(new.name, new, diff_trees(self.tree, new))
        return Steps(self.shop, new, self.chain + [layer])


def merge_chain(*states: Steps) -> list[FakeLayer]:
    """The layer chain of merge(states): the concatenation of their chains."""
    out: list[FakeLayer] = []
    for s in states:
        out.extend(s.chain)
    return out


def _walk(root: Path | None) -> dict[str, os.stat_result]:
    out: dict[str, os.stat_result] = {}
    if root is None:
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = os.lstat(full)
    return out


def _same(lower: Path, upper: Path, rel: str, a: os.stat_result, b: os.stat_result) -> bool:
    if (stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode) or a.st_mode != b.st_mode
            or a.st_uid != b.st_uid or a.st_gid != b.st_gid or a.st_mtime_ns != b.st_mtime_ns
            or a.st_rdev != b.st_rdev or a.st_size != b.st_size):
        return False
    lp, up = lower / rel, upper / rel
    if _xattrs(lp) != _xattrs(up):
        return False
    if stat.S_ISLNK(a.st_mode):
        return os.readlink(lp) == os.readlink(up)
    if stat.S_ISREG(a.st_mode):
        return lp.read_bytes() == up.read_bytes()
    return True


def diff_trees(lower: Path | None, upper: Path) -> list[Change]:
    """A double-walking differ: adds, modifies (any metadata or content; a type change is a
    modify), and only the topmost deletion of a deleted subtree."""
    lo, up = _walk(lower), _walk(upper)
    changes: list[Change] = []
    for rel in sorted(set(lo) | set(up), key=path_key):
        a, b = lo.get(rel), up.get(rel)
        if b is None:
            parent = rel.rpartition("/")[0]
            if parent and (parent not in up or not stat.S_ISDIR(up[parent].st_mode)):
                continue  # a parent's deletion or replacement covers it
            changes.append(Change(rel, "delete"))
        elif a is None:
            changes.append(Change(rel, "add"))
        elif not _same(lower, upper, rel, a, b):
            changes.append(Change(rel, "modify"))
    return changes


# ---------------------------------------------------------------- tree pictures


def _xattrs(p: Path | str) -> dict[str, bytes]:
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError:
        return {}
    return {n: os.getxattr(p, n, follow_symlinks=False) for n in names
            if not n.startswith("trusted.overlay.") and n != "security.selinux"}


@dataclass
class E:
    """Expected entry. kind: file | dir | symlink | fifo | chr. None fields are not
    checked; xattrs default to none at all (exact)."""

    kind: str
    data: bytes | str | int | None = None  # file bytes, symlink target, device rdev
    mode: int | None = None
    uid: int | None = 0
    gid: int | None = 0
    mtime: int | None = None
    xattrs: dict[str, bytes] | None = field(default_factory=dict)
    link: str | None = None  # same inode as that other path of the tree
    nlink: int | None = None


def F(data: bytes = b"", mode: int = 0o644, **kw) -> E:
    return E("file", data, mode, **kw)


def D(mode: int = 0o755, **kw) -> E:
    return E("dir", None, mode, **kw)


def L(target: str, **kw) -> E:
    return E("symlink", target, None, **kw)


def H(other: str) -> E:
    """A hardlink of `other` (its expected entry says the rest)."""
    return E("link", link=other, uid=None, gid=None, xattrs=None)


def Fifo(mode: int = 0o644, **kw) -> E:
    return E("fifo", None, mode, **kw)


def Chr(major: int, minor: int, mode: int = 0o644, **kw) -> E:
    return E("chr", os.makedev(major, minor), mode, **kw)


_KIND = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
         stat.S_IFIFO: "fifo", stat.S_IFCHR: "chr", stat.S_IFBLK: "blk",
         stat.S_IFSOCK: "sock"}


def picture(root: Path) -> dict[str, dict]:
    """Everything about a tree: per path its kind, data, mode, owner, mtime, xattrs,
    inode and link count."""
    out: dict[str, dict] = {}
    for rel, st in _walk(root).items():
        p = root / rel
        kind = _KIND[stat.S_IFMT(st.st_mode)]
        data: bytes | str | int | None = None
        if kind == "file":
            data = p.read_bytes()
        elif kind == "symlink":
            data = os.readlink(p)
        elif kind in ("chr", "blk"):
            data = st.st_rdev
        out[rel] = dict(kind=kind, data=data, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                        gid=st.st_gid, mtime=st.st_mtime_ns, xattrs=_xattrs(p),
                        ino=st.st_ino, nlink=st.st_nlink, blocks=st.st_blocks)
    return out


def assert_tree(root: Path, expected: dict[str, E]) -> dict[str, dict]:
    """Assert root holds exactly `expected` (parents included); return its picture."""
    pic = picture(root)
    assert sorted(pic) == sorted(expected), (
        f"paths differ: extra {sorted(set(pic) - set(expected))}, "
        f"missing {sorted(set(expected) - set(pic))}")
    for rel, want in expected.items():
        got = pic[rel]
        if want.kind == "link":
            assert got["ino"] == pic[want.link]["ino"], f"{rel} is not a hardlink of {want.link}"
            want = expected[want.link]
        assert got["kind"] == want.kind, f"{rel}: kind {got['kind']} != {want.kind}"
        for name in ("data", "mode", "uid", "gid", "mtime", "xattrs", "nlink"):
            w = getattr(want, name)
            if name == "mode" and want.kind == "symlink":
                continue
            if w is not None:
                g = got[name]
                assert g == w, f"{rel}: {name} {g!r} != {w!r}"
    return pic


def checksum(root: Path) -> str:
    """A digest over a tree's content and metadata, inode numbers included (link counts
    left out: a merge adds links to its inputs' inodes, by design)."""
    h = hashlib.sha256()
    for rel, info in sorted(picture(root).items()):
        info.pop("nlink")
        h.update(repr((rel, sorted(info.items()))).encode())
    return h.hexdigest()


# ---------------------------------------------------------------- states in a real Store


class Built:
    """A state in a real snapshot Store, built like an LLB chain: `do(ops)` is one FileOp
    (one committed snapshot); `merge` and `diff` are the store's. ref None is scratch."""

    def __init__(self, store, ref=None):
        self.store = store
        self.ref = ref

    def do(self, *ops: Op) -> "Built":
        m = self.store.prepare(self.ref)
        with m.mount() as path:
            apply_ops(path, ops)
        return Built(self.store, m.commit())

    def merge(self, *others: "Built") -> "Built":
        return Built(self.store, self.store.merge([self.ref, *[o.ref for o in others]]))

    def diff(self, upper: "Built") -> "Built":
        """diff(self, upper), like llb.Diff(self, upper)."""
        return Built(self.store, self.store.diff(self.ref, upper.ref))

    def picture(self) -> dict[str, dict]:
        if self.ref is None:
            return {}
        with self.store.view(self.ref) as path:
            return picture(path)

    def check(self, expected: dict[str, E]) -> dict[str, dict]:
        """Assert this state's tree is exactly `expected`."""
        if self.ref is None:
            assert expected == {}, "scratch is empty"
            return {}
        with self.store.view(self.ref) as path:
            return assert_tree(path, expected)

    def same_as(self, other: "Built") -> None:
        """Assert both trees hold the same paths with the same kind, data, mode, owner and
        xattrs (BuildKit's contentsOf comparison: mtimes and inodes aside)."""
        keys = ("kind", "data", "mode", "uid", "gid", "xattrs")
        a = {r: {k: v[k] for k in keys} for r, v in self.picture().items()}
        b = {r: {k: v[k] for k in keys} for r, v in other.picture().items()}
        assert sorted(a) == sorted(b), (
            f"paths differ: extra {sorted(set(a) - set(b))}, missing {sorted(set(b) - set(a))}")
        for rel in a:
            assert a[rel] == b[rel], f"{rel}: {a[rel]} != {b[rel]}"


def merge(*states: Built) -> Built:
    return Built(states[0].store, states[0].store.merge([s.ref for s in states]))


# ------------------------------------------------------------------ the alpine-like base of
# BuildKit's merge cases


def alpine(store) -> Built:
    return Built(store).do(
        mkdir("bin"), mkfile("bin/sh", b"#!ash", 0o755), mkdir("etc"),
        mkfile("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"), mkdir("root", 0o700),
        mkdir("usr"), mkdir("usr/bin"), symlink("../../bin/sh", "usr/bin/env"))


ALPINE = {"bin": D(), "bin/sh": F(b"#!ash", 0o755), "etc": D(),
          "etc/passwd": F(b"root:x:0:0:root:/root:/bin/sh\n"), "root": D(0o700), "usr": D(),
          "usr/bin": D(), "usr/bin/env": L("../../bin/sh")}
