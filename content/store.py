"""The content store: sha256-addressed blobs under `<root>/content/`, as containerd keeps
them. Layout:

    blobs/sha256/<hex>        committed blobs, complete and verified, read-only
    ingest/<hex>              a download in progress (or stopped) of a known digest; the file
                              is both the partial data and its writer's flock, so a second
                              process waits for it and a later one resumes it
    ingest/tmp-<id>           a blob being written whose digest is known only at the end
    leases/<holder hex>/<hex> one empty file per (holder, blob) lease
    sessions/<id>.lock        flocked by each open ContentStore; its `session:<id>` leases
                              die with it
    lock                      shared while publishing or leasing, exclusive while removing

Safety: a blob appears under blobs/ only by rename after its digest and size were checked,
so a kill at any point leaves nothing half-written there. fsync policy: a blob's data is
fsynced before that rename (a name never points at unwritten data after a power cut), the
directory is not (a rename lost to a power cut only means the blob is fetched again), and
lease files are not (as the README says, clear the cache with `llb prune --all` after a
power cut). Every blob this process writes or finds is leased by its session until close,
so a prune in another process never takes a blob between its download and its use.
"""

from __future__ import annotations

import io
import os
import stat
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Protocol

from llb.errors import NoSpaceError, is_no_space
from llb.content.digest import Digester, check_digest, digest_hex, verify_bytes
from llb.content.errors import (BlobInUseError, BlobNotFoundError, ContentError,
                                DigestMismatchError, TransferCancelledError)
from llb.content.reader import BlobReader
from llb.fsutil.locks import Claim, SharedLock, lock_file, try_lock
from llb.resource import Closeable

_CHUNK = 1 << 20
_WRITEBACK = 16 << 20  # bytes of a blob written before their writeback is started
_HOLDER_MAX = 120
_SESSION = "session:"


class BlobInfo(NamedTuple):
    """A committed blob: its digest, size in bytes and modification time."""

    digest: str
    size: int
    mtime: float


class IngestTap(Protocol):
    """Told of every byte an Ingest takes, in order, as it takes them (a reader following a
    download: content.follow.BlobFollower)."""

    def data(self, piece: bytes | memoryview) -> None:
        """The next bytes, written and hashed."""

    def rewind(self, digest: str, size: int) -> None:
        """The writer starts again from byte 0; the `size` bytes it had taken so far had
        this digest."""

    def verified(self) -> None:
        """All bytes are in and match the blob's digest and size (the blob is about to be
        published)."""


class Ingest:
    """A blob being written. Write the bytes from `offset` on (what an earlier, interrupted
    writer left, already re-hashed), then `commit()`. With `exists` set the blob is already
    in the store and there is nothing to write. Leaving the `with` block without a commit
    keeps the partial data for a later resume (for a known digest) or drops it."""

    def __init__(self, store: "ContentStore", path: str | None, fd: int | None,
                 digest: str | None, size: int | None):
        self._store = store
        self._path = path
        self._fd = fd
        self.digest = digest
        self.size = size
        self._hash = Digester()
        self._tap: IngestTap | None = None
        self.exists = fd is None
        self.offset = 0
        self._flushed = 0  # bytes whose writeback was started (see write)
        if fd is not None:
            have = os.fstat(fd).st_size
            if size is not None and have > size:
                os.ftruncate(fd, 0)
                have = 0
            while self._hash.size < have:
                piece = os.pread(fd, min(_CHUNK, have - self._hash.size), self._hash.size)
                if not piece:
                    break
                self._hash.update(piece)
            self.offset = self._hash.size
            os.lseek(fd, self.offset, os.SEEK_SET)

    @property
    def written(self) -> int:
        """Bytes of the blob present so far (resumed plus written)."""
        return self._hash.size

    def follow(self, tap: IngestTap) -> None:
        """Tell `tap` of every byte from now on, starting with those an earlier writer left
        (read back from the partial file first)."""
        fd = self._open_fd()
        done = 0
        while done < self._hash.size:
            piece = os.pread(fd, min(_CHUNK, self._hash.size - done), done)
            if not piece:
                break
            tap.data(piece)
            done += len(piece)
        self._tap = tap

    def write(self, data: bytes | memoryview) -> None:
        """Append the next bytes; more than the expected size is a DigestMismatchError."""
        fd = self._open_fd()
        if self.size is not None and self._hash.size + len(data) > self.size:
            self.discard()
            raise DigestMismatchError(f"blob {self.digest}: more data than its size "
                                      f"({self.size} bytes)")
        view = memoryview(data)
        with _full_disk(self._store.root):
            while view:
                n = os.write(fd, view)
                view = view[n:]
        self._hash.update(data)
        if self._store.fsync and self._hash.size - self._flushed >= _WRITEBACK:
            # start writing these bytes to disk now (and let their pages go once written),
            # so the fsync before the commit waits for the last few MiB only
            os.posix_fadvise(fd, self._flushed, self._hash.size - self._flushed,
                             os.POSIX_FADV_DONTNEED)
            self._flushed = self._hash.size
        if self._tap is not None:
            self._tap.data(data)

    def reset(self) -> None:
        """Drop what was written so far (e.g. a server ignored a range request)."""
        fd = self._open_fd()
        self._rewind()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        self._hash = Digester()
        self.offset = 0
        self._flushed = 0

    def commit(self) -> BlobInfo:
        """Check digest and size, then publish the blob; DigestMismatchError drops it."""
        if self.exists:
            assert self.digest is not None
            return self._store.info(self.digest)
        fd = self._open_fd()
        assert self._path is not None
        digest = self.digest or self._hash.digest()
        try:
            if self.digest is not None:
                self._hash.check(self.digest, self.size, f"blob {self.digest}")
        except DigestMismatchError:
            self.discard()
            raise
        if self._tap is not None:
            self._tap.verified()
            self._tap = None
        store = self._store
        with _full_disk(store.root):
            if store.fsync:
                os.fsync(fd)
        os.fchmod(fd, 0o444)
        target = store.blob_path(digest)
        with store._lock.shared(), _full_disk(store.root):
            store._add_lease(digest_hex(digest), store.session_holder)
            if self.digest is None and os.path.exists(target):
                os.unlink(self._path)  # the same bytes are there already
            else:
                os.rename(self._path, target)
        self._close()
        st = os.stat(target)
        return BlobInfo(digest, st.st_size, st.st_mtime)

    def abort(self) -> None:
        """Stop writing; a known digest's partial data stays for a resume (idempotent)."""
        if self._fd is not None and self.digest is None and self._path is not None:
            _unlink(self._path)
        self._close()

    def discard(self) -> None:
        """Stop writing and drop the partial data (idempotent)."""
        if self._fd is not None and self._path is not None:
            self._rewind()
            _unlink(self._path)
        self._close()

    def _rewind(self) -> None:
        if self._tap is not None and self._hash.size:
            self._tap.rewind(self._hash.digest(), self._hash.size)

    def __enter__(self) -> "Ingest":
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ContentError(f"blob {self.digest}: writer already finished")
        return self._fd

    def _close(self) -> None:
        fd, self._fd = self._fd, None  # never closed twice, whatever interrupts this
        if fd is not None:
            os.close(fd)


class ContentStore(Closeable):
    """Blobs under `<root>/content/`. One instance per process and root is enough; it is safe
    to share between threads and to run beside other processes on the same root."""

    def __init__(self, root: Path, *, fsync: bool = True):
        self.root = Path(os.path.abspath(root))
        self.dir = self.root / "content"
        self.fsync = fsync
        self._blobs = os.path.join(self.dir, "blobs", "sha256")
        self._ingest = os.path.join(self.dir, "ingest")
        self._leases = os.path.join(self.dir, "leases")
        self._sessions = os.path.join(self.dir, "sessions")
        with _full_disk(self.root):
            for d in (self._blobs, self._ingest, self._leases, self._sessions):
                os.makedirs(d, exist_ok=True)
            # shared while publishing or leasing blobs, exclusive while removing them
            self._lock = SharedLock(os.path.join(self.dir, "lock"))
            session_id = uuid.uuid4().hex[:24]
            with self._lock.shared():  # a session is born where no prune is reaping
                # held for the store's lifetime: leases of a session whose lock nobody
                # holds belong to a dead process and may be reaped
                self._session = Claim(os.path.join(self._sessions, f"{session_id}.lock"))
        self.session_holder = _SESSION + session_id
        self._closed = False
        self._state = threading.Lock()

    # -- reading ---------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        """Where the blob of `digest` lives (whether or not it is there)."""
        return os.path.join(self._blobs, digest_hex(digest))

    def exists(self, digest: str) -> bool:
        """True if the blob is in the store."""
        return os.path.exists(self.blob_path(digest))

    def info(self, digest: str) -> BlobInfo:
        """Digest, size and mtime of a stored blob; BlobNotFoundError if absent."""
        try:
            st = os.stat(self.blob_path(digest))
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {digest} is not in the content store") from None
        return BlobInfo(digest, st.st_size, st.st_mtime)

    def path(self, digest: str) -> Path:
        """The file of a stored blob, for readers that copy it whole (never write to it).
        Lease the blob first when it must outlive a concurrent prune."""
        self.info(digest)
        return Path(self.blob_path(digest))

    def open(self, digest: str, size: int | None = None) -> BlobReader:
        """The blob, verified as it is read (digest at the end, size up front when given)."""
        f, have = self._open_sized(digest, size)
        path = self.blob_path(digest)
        return BlobReader(f, digest, have, f"blob {digest} in the content store",
                          on_mismatch=lambda: _unlink(path))

    def open_unverified(self, digest: str, size: int | None = None) -> io.FileIO:
        """The blob's file opened for reading without hashing it again (its digest was
        checked when it was stored; a wrong size is refused and removed up front). For a
        reader that checks what it reads another way (a layer's diff_id) and calls
        `check` when that fails."""
        return self._open_sized(digest, size)[0]

    def check(self, digest: str, size: int | None = None) -> bool:
        """Read the stored blob through and verify it: True when it is intact, False when it
        is absent or was corrupt (then it is removed)."""
        try:
            with self.open(digest, size) as r:
                while r.read(_CHUNK):
                    pass
        except (BlobNotFoundError, DigestMismatchError):
            return False
        return True

    def _open_sized(self, digest: str, size: int | None) -> tuple[io.FileIO, int]:
        path = self.blob_path(digest)
        try:
            f = io.FileIO(path, "r")
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {digest} is not in the content store") from None
        have = os.fstat(f.fileno()).st_size
        if size is not None and have != size:
            f.close()
            _unlink(path)
            raise DigestMismatchError(f"blob {digest} in the content store: size mismatch: "
                                      f"{have} bytes, expected {size} (removed)")
        return f, have

    def read(self, digest: str, size: int | None = None, *, limit: int = 64 << 20) -> bytes:
        """The whole blob as bytes, verified; for manifests and configs (at most `limit`)."""
        with self.open(digest, size) as r:
            if r.size > limit:
                raise ContentError(f"blob {digest} is {r.size} bytes, more than {limit} "
                                   "expected here")
            data = r.read()
        assert isinstance(data, bytes)
        return data

    def blobs(self) -> list[BlobInfo]:
        """Every committed blob, sorted by digest."""
        out = []
        for name in sorted(os.listdir(self._blobs)):
            if len(name) == 64:
                try:
                    st = os.stat(os.path.join(self._blobs, name))
                except FileNotFoundError:
                    continue
                out.append(BlobInfo("sha256:" + name, st.st_size, st.st_mtime))
        return out

    def usage(self) -> int:
        """Bytes on disk of committed blobs and partial downloads."""
        total = 0
        for d in (self._blobs, self._ingest):
            for name in os.listdir(d):
                try:
                    total += os.lstat(os.path.join(d, name)).st_blocks * 512
                except FileNotFoundError:
                    pass
        return total

    # -- writing ---------------------------------------------------------------------------

    def ingest(self, digest: str, size: int | None = None, *,
               cancelled: threading.Event | None = None) -> Ingest:
        """A writer for the blob of a known digest (and size, when known). It resumes what
        an earlier writer left (`offset`), waits while another writer (thread or process)
        has the same blob, and has `exists` set when the blob is already stored."""
        hexd = digest_hex(digest)
        if size is not None and (not isinstance(size, int) or size < 0):
            raise ContentError(f"blob {digest}: bad size {size!r}")
        path = os.path.join(self._ingest, hexd)
        if self._lease_if_present(digest):
            return Ingest(self, None, None, digest, size)
        fd = lock_file(path, cancelled=cancelled)
        if fd is None:
            raise TransferCancelledError(f"blob {digest}: cancelled while another writer "
                                         "had it")
        if self._lease_if_present(digest):
            _unlink(path)
            os.close(fd)
            return Ingest(self, None, None, digest, size)
        return Ingest(self, path, fd, digest, size)

    def writer(self) -> Ingest:
        """A writer for a blob whose digest is known only when it is complete."""
        path = os.path.join(self._ingest, f"tmp-{uuid.uuid4().hex}")
        fd = lock_file(path, wait=False)
        assert fd is not None  # a fresh random name
        return Ingest(self, path, fd, None, None)

    def put(self, data: bytes, digest: str | None = None) -> BlobInfo:
        """Store `data` (checked against `digest` when given) and return its info."""
        if digest is not None:
            verify_bytes(data, check_digest(digest), None, f"blob {digest}")
            if self._lease_if_present(digest):
                return self.info(digest)
        with self.writer() as w:
            w.write(data)
            return w.commit()

    # -- leases and removal ----------------------------------------------------------------

    def lease(self, digest: str, holder: str) -> None:
        """Keep the blob from prune and remove until `holder` releases it."""
        hexd = digest_hex(digest)
        with self._lock.shared():
            if not os.path.exists(os.path.join(self._blobs, hexd)):
                raise BlobNotFoundError(f"blob {digest} is not in the content store")
            self._add_lease(hexd, holder)

    def release(self, digest: str, holder: str) -> None:
        """Drop holder's lease on the blob (no error when it holds none)."""
        _unlink(os.path.join(self._holder_dir(holder), digest_hex(digest)))

    def release_all(self, holder: str) -> None:
        """Drop every lease `holder` has."""
        _remove_dir(self._holder_dir(holder))

    def leases(self, digest: str) -> list[str]:
        """Holders leasing the blob, dead sessions included until a prune reaps them."""
        hexd = digest_hex(digest)
        return sorted(holder for holder, names in self._all_leases() if hexd in names)

    def holders(self) -> list[str]:
        """Every holder that leases at least one blob."""
        return sorted(holder for holder, names in self._all_leases() if names)

    def remove(self, digest: str) -> int:
        """Remove one blob no live holder leases; bytes freed (0 when absent)."""
        hexd = digest_hex(digest)
        with self._lock.exclusive():
            self._reap_dead_sessions()
            holders = [h for h, names in self._all_leases() if hexd in names]
            if holders:
                raise BlobInUseError(f"blob {digest} is leased by {', '.join(sorted(holders))}")
            return _remove_file(os.path.join(self._blobs, hexd))

    def prune(self, keep: Iterable[str] = ()) -> int:
        """Remove every blob that is neither in `keep` (the digests the caller's records
        still reference) nor leased by a live holder, and every stopped download; returns
        the bytes freed. Leases of dead sessions are reaped first."""
        keep_hex = {digest_hex(d) for d in keep}
        freed = 0
        with self._lock.exclusive():
            self._reap_dead_sessions()
            for _, names in self._all_leases():
                keep_hex |= names
            for name in os.listdir(self._blobs):
                if name not in keep_hex:
                    freed += _remove_file(os.path.join(self._blobs, name))
            for name in os.listdir(self._ingest):
                path = os.path.join(self._ingest, name)
                fd = try_lock(path)
                if fd is not None:  # nobody writes it: a stopped download
                    freed += _remove_file(path)
                    os.close(fd)
        return freed

    def close(self) -> None:
        """Drop this session's leases and locks (idempotent)."""
        with self._state:
            if self._closed:
                return
            self._closed = True
        self.release_all(self.session_holder)
        self._session.close()
        self._lock.close()

    # -- internals -------------------------------------------------------------------------

    def _holder_dir(self, holder: str) -> str:
        if not isinstance(holder, str) or not holder or len(holder) > _HOLDER_MAX:
            raise ContentError(f"bad lease holder {str(holder)[:40]!r} (1 to {_HOLDER_MAX} "
                               "characters)")
        return os.path.join(self._leases, holder.encode().hex())

    def _add_lease(self, hexd: str, holder: str) -> None:
        d = self._holder_dir(holder)
        with _full_disk(self.root):
            os.makedirs(d, exist_ok=True)
            os.close(os.open(os.path.join(d, hexd), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                             0o644))

    def _lease_if_present(self, digest: str) -> bool:
        with self._lock.shared():
            hexd = digest_hex(digest)
            if not os.path.exists(os.path.join(self._blobs, hexd)):
                return False
            self._add_lease(hexd, self.session_holder)
            return True

    def _all_leases(self) -> list[tuple[str, set[str]]]:
        out = []
        for name in os.listdir(self._leases):
            try:
                holder = bytes.fromhex(name).decode()
                names = set(os.listdir(os.path.join(self._leases, name)))
            except (ValueError, FileNotFoundError):
                continue
            out.append((holder, names))
        return out

    def _reap_dead_sessions(self) -> None:
        """Under the exclusive lock: drop the leases and lock files of dead sessions."""
        live = set()
        for name in os.listdir(self._sessions):
            if not name.endswith(".lock"):
                continue
            sid = name[: -len(".lock")]
            path = os.path.join(self._sessions, name)
            fd = try_lock(path)
            if fd is None:
                live.add(sid)
                continue
            _remove_dir(self._holder_dir(_SESSION + sid))
            _unlink(path)
            os.close(fd)
        for holder, _ in self._all_leases():
            if holder.startswith(_SESSION) and holder[len(_SESSION):] not in live:
                _remove_dir(self._holder_dir(holder))  # its lock file is long gone


@contextmanager
def _full_disk(root: Path) -> Iterator[None]:
    """A write that finds the root's filesystem full is a NoSpaceError naming the root
    (a writer's partial data goes with its abort, as for any failed write)."""
    try:
        yield
    except OSError as e:
        if is_no_space(e):
            raise NoSpaceError.on("root", root) from e
        raise


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_file(path: str) -> int:
    try:
        st = os.lstat(path)
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return st.st_blocks * 512 if stat.S_ISREG(st.st_mode) else 0


def _remove_dir(path: str) -> None:
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        _unlink(os.path.join(path, name))
    try:
        os.rmdir(path)
    except (FileNotFoundError, OSError):
        pass
