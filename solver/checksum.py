"""Content checksums: exactly the content and metadata an op reads from a tree.

Local sources are keyed by the checksum of the selected files of their directory; a Copy is
keyed by the checksum of what it reads from its source input (the matched paths with the
copy's include/exclude), so editing a file the copy does not read leaves its key unchanged.
Modification times are left out (as BuildKit's content hashes do); content, type, mode,
owner, symlink targets, device numbers and xattrs are in."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path
from typing import Iterable, Protocol

from llb.fsutil import contains_wildcards, read_xattrs
from llb.ops import Copy
from llb.snapshot.paths import resolve_in_root
from llb.solver.cachedb import CacheDB
from llb.solver.errors import InputError
from llb.solver.patterns import PathFilter, resolve_wildcards, walk

_CHUNK = 1 << 20


class _Hasher(Protocol):
    """What a checksum feeds entries into (a hashlib hash)."""

    def update(self, data: bytes, /) -> None: ...


def file_digest(path: str) -> bytes:
    """sha256 of a regular file's content."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(_CHUNK)
            if not b:
                break
            h.update(b)
    return h.digest()


def _identity(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


class FileHashMemo:
    """Content digests of local files remembered across solves, keyed by path and a stat
    identity (device, inode, size, mtime, ctime). Files changed within the last two seconds
    are not remembered (their mtime may not tell a later same-size edit apart). Every digest
    given out is also kept in `seen` (path -> (identity, digest)) for CopiedFiles."""

    def __init__(self, db: CacheDB | None, base: Path | str):
        self.db = db
        self.base = os.path.abspath(os.fspath(base))
        self.known = db.file_hashes(self.base) if db is not None else {}
        self.new: list[tuple[str, str, bytes]] = []
        self.seen: dict[str, tuple[str, bytes]] = {}
        self.horizon = time.time() - 2

    def digest(self, full: str, st: os.stat_result) -> bytes:
        ident = _identity(st)
        hit = self.known.get(full)
        if hit is not None and hit[0] == ident:
            d = hit[1]
        else:
            d = file_digest(full)
            if st.st_mtime < self.horizon and st.st_ctime < self.horizon:
                self.new.append((full, ident, d))
        self.seen[full] = (ident, d)
        return d

    def save(self) -> None:
        if self.db is not None:
            self.db.put_file_hashes(self.new)
        self.new = []


class CopiedFiles:
    """Content digests of the files of a copy of a tree a FileHashMemo read (a local
    source's snapshot): a file whose source still has the identity it had when the memo
    read it, last changed before the memo's horizon, still holds what the memo hashed
    (any write since would have moved its ctime to after the horizon), so the copy holds it
    too; any other file is hashed from the copy itself."""

    def __init__(self, memo: FileHashMemo, copy_root: Path | str):
        self.memo = memo
        self.prefix = os.fspath(copy_root).rstrip("/") + "/"

    def digest(self, full: str, st: os.stat_result) -> bytes:
        src = os.path.join(self.memo.base, full[len(self.prefix):])
        seen = self.memo.seen.get(src)
        if seen is not None:
            try:
                now = os.lstat(src)
            except OSError:
                now = None
            horizon = self.memo.horizon
            if now is not None and _identity(now) == seen[0] and now.st_mtime < horizon \
                    and now.st_ctime < horizon:
                return seen[1]
        return file_digest(full)


def _entry(h: _Hasher, base: str, rel: str, st: os.stat_result,
           memo: FileHashMemo | CopiedFiles | None = None) -> None:
    """Feed one entry's metadata and content into `h`."""
    mode = st.st_mode
    full = os.path.join(base, rel) if rel else base
    h.update(f"{rel}\0{stat.S_IFMT(mode):o}\0{stat.S_IMODE(mode):o}\0{st.st_uid}\0{st.st_gid}\0"
             .encode("utf-8", "surrogateescape"))
    if stat.S_ISREG(mode):
        h.update(memo.digest(full, st) if memo is not None else file_digest(full))
    elif stat.S_ISLNK(mode):
        h.update(os.fsencode(os.readlink(full)))
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        h.update(f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}".encode())
    for n, v in read_xattrs(full).items():
        h.update(b"\0x" + os.fsencode(n) + b"=" + v)
    h.update(b"\n")


def tree_checksum(base: Path | str, flt: PathFilter | None = None,
                  memo: FileHashMemo | CopiedFiles | None = None) -> str:
    """Checksum of every entry under `base` the filter selects (the directory itself
    excluded). Sockets are left out: they are no content, and a sync does not copy them, so
    a host directory and the snapshot synced from it have the same checksum."""
    h = hashlib.sha256(b"llb-tree-v1\n")
    b = os.fspath(base)
    for rel, st in walk(b, flt):
        if stat.S_ISSOCK(st.st_mode):
            continue
        _entry(h, b, rel, st, memo)
    return "sha256:" + h.hexdigest()


def local_checksum(path: Path, include: Iterable[str] = (), exclude: Iterable[str] = (),
                   db: CacheDB | None = None) -> str:
    """The content key of a local source: its directory's selected files (file digests
    memoised in the cache DB `db` when given)."""
    path = Path(os.path.abspath(path))
    memo = FileHashMemo(db, path) if db is not None else None
    out = tree_checksum(path, PathFilter(include, exclude), memo)
    if memo is not None:
        memo.save()
    return out


def copy_spec(copy: Copy) -> str:
    """The Copy options that decide what it reads (the memo key beside the snapshot id)."""
    return "\0".join([
        copy.src, str(int(copy.follow_symlinks)), str(int(copy.allow_wildcard)),
        str(int(copy.allow_empty_wildcard)), "\x01".join(copy.include),
        "\x01".join(copy.exclude),
    ])


def copy_checksum(top: Path | None, copy: Copy, *, vertex: str | None = None) -> str:
    """Checksum of what `copy` reads from the tree at `top` (None: the empty tree).

    Raises InputError when the source path does not exist (and no empty wildcard is allowed)."""
    h = hashlib.sha256(b"llb-copy-v1\n")
    matches = copy_matches(top, copy) if top is not None else []
    if not matches:
        if copy.allow_wildcard and copy.allow_empty_wildcard and contains_wildcards(copy.src):
            return "sha256:" + h.hexdigest()
        raise InputError(f"copy source {copy.src} not found", vertex=vertex, path=copy.src)
    flt = PathFilter(copy.include, copy.exclude)
    for rel, full in matches:
        st = os.stat(full) if copy.follow_symlinks else os.lstat(full)
        h.update(b"@" + rel.encode("utf-8", "surrogateescape") + b"\0")
        if stat.S_ISDIR(st.st_mode):
            _entry(h, full, "", os.lstat(full) if not copy.follow_symlinks else st)
            for r, s in walk(full, flt):
                _entry(h, full, r, s)
        else:
            if copy.follow_symlinks and stat.S_ISLNK(os.lstat(full).st_mode):
                full = os.path.realpath(full)
            _entry(h, full, "", st)
    return "sha256:" + h.hexdigest()


def copy_matches(top: Path, copy: Copy) -> list[tuple[str, str]]:
    """The paths `copy.src` names inside `top`, as (path relative to top, real path): for a
    wildcard, exactly what the copy itself reads (solver.patterns.resolve_wildcards)."""
    src = copy.src
    if not (copy.allow_wildcard and contains_wildcards(src)):
        p = resolve_in_root(top, src, follow_final=copy.follow_symlinks)
        return [(src.strip("/"), str(p))] if os.path.lexists(p) else []
    out = []
    for rel in resolve_wildcards(str(top), src, copy.follow_symlinks):
        p = resolve_in_root(top, "/" + rel, follow_final=copy.follow_symlinks)
        if os.path.lexists(p):
            out.append((rel, str(p)))
    return out
