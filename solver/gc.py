"""Cache garbage collection: which records go (the policy) and freeing what they held.
`llb prune` calls `prune`; a future automatic GC after solves calls the same function.

Records go least recently used first: all of them, or until the cache fits a size, or those
unused for `keep_duration`. Then every snapshot no remaining record, lease or running solve
holds is removed, and (with `all_`) the content of cache mounts not in use. Last, the blobs
of the content store that no remaining snapshot references (its layer blobs, the manifest
and config of the image it came from) and no live process leases.

A prune runs beside solves, as BuildKit's does, and never waits for them: a record whose
snapshots a running solve holds (it hit, committed or mounts them: Store.in_use) is in use
and skipped; a solve that hits a record after the prune looked holds its snapshots before
relying on them (Store.pin), and the store never removes a held snapshot. Prunes take turns
(PruneLock)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Collection, NamedTuple

from llb.errors import LLBError, NoSpaceError
from llb.snapshot import Store
from llb.snapshot.space import RESERVE, ensure_reserve, free_bytes, release_reserve
from llb.solver.cachedb import CacheDB, Record, lease_holder
from llb.solver.cachemounts import CacheMounts
from llb.solver.errors import opening_error
from llb.solver.locks import PruneLock, clean_key_locks
from llb.solver.orphans import reap

KEEP_DURATION = 48 * 3600  # the default policy removes records unused this long (seconds)


class PruneResult(NamedTuple):
    """What a prune removed (cache records, bytes freed on disk) and how many records the
    policy chose that it left in place because running solves use them."""

    removed: int
    freed: int
    skipped: int = 0


class BlobUsage(NamedTuple):
    """A blob of the content store: its digest, bytes, and whether something needs it (a
    snapshot references it or a live process leases it): prune keeps those."""

    digest: str
    size: int
    in_use: bool


class OtherSnapshots(NamedTuple):
    """Snapshots no record names as a result: parents a record's snapshot still needs (its
    record was pruned), and unreferenced ones, which nothing keeps (a solve killed between
    committing and recording left them): the next prune removes those."""

    snapshots: int = 0
    size: int = 0  # bytes of all of them
    unreferenced: int = 0  # how many nothing keeps
    unreferenced_size: int = 0


class Usage(NamedTuple):
    """The cache's records (least recently used first, sizes filled in), cache mounts, the
    content store's blobs, and the snapshots no record names: together, every byte of the
    root's snapshots, cache mounts and blobs (what `llb du` totals)."""

    records: list[Record]
    cache_mounts: list[tuple[str, int]]  # (id, bytes)
    blobs: list[BlobUsage] = []
    other: OtherSnapshots = OtherSnapshots()

    @property
    def total(self) -> int:
        return (sum(r.size for r in self.records) + sum(size for _, size in self.cache_mounts)
                + sum(b.size for b in self.blobs) + self.other.size)


def select(records: list[Record], *, all_: bool = False, keep_storage: int | None = None,
           keep_duration: float = KEEP_DURATION, now: float | None = None,
           in_use: Collection[str] = ()) -> list[Record]:
    """The policy: which of `records` (least recently used first) to remove; records whose
    keys are `in_use` are never chosen (with keep_storage, the next ones go instead)."""
    return choose(records, all_=all_, keep_storage=keep_storage, keep_duration=keep_duration,
                  now=now, in_use=in_use)[0]


def choose(records: list[Record], *, all_: bool = False, keep_storage: int | None = None,
           keep_duration: float = KEEP_DURATION, now: float | None = None,
           in_use: Collection[str] = ()) -> tuple[list[Record], list[Record]]:
    """select()'s victims, and the records it would have chosen but for being in use."""
    victims: list[Record] = []
    skipped: list[Record] = []
    if keep_storage is not None and not all_:
        total = sum(r.size for r in records)
        for r in records:
            if total <= keep_storage:
                break
            if r.key in in_use:
                skipped.append(r)
                continue
            victims.append(r)
            total -= r.size
        return victims, skipped
    cutoff = (time.time() if now is None else now) - keep_duration
    for r in records:
        if all_ or r.last_used < cutoff:
            (skipped if r.key in in_use else victims).append(r)
    return victims, skipped


def prune(root: Path, *, all_: bool = False, keep_storage: int | None = None,
          keep_duration: float = KEEP_DURATION, snapshotter: str = "auto") -> PruneResult:
    """Remove the records the policy selects and everything only they held. On a disk too
    full for the databases to change, the root's reserve is freed first (and allocated
    again at the end when there is room): see llb.snapshot.space."""
    if not root.exists():
        return PruneResult(0, 0)
    released = release_reserve(root) if free_bytes(root) < RESERVE else 0
    lock = PruneLock(root)
    try:
        with _opening(root):
            lock.acquire(exclusive=True)  # another prune (never a solve) may hold it
            reap(root)  # dead processes' containers, before their mounts and caches go
        try:
            result = _prune(root, all_, keep_storage, keep_duration, snapshotter)
        except NoSpaceError:
            if released or not release_reserve(root):
                raise
            result = _prune(root, all_, keep_storage, keep_duration, snapshotter)
    finally:
        lock.release()
    ensure_reserve(root)
    return result


def _prune(root: Path, all_: bool, keep_storage: int | None, keep_duration: float,
           snapshotter: str) -> PruneResult:
    with ExitStack() as stack:
        with _opening(root):
            store = Store(root, snapshotter)
            stack.callback(store.close)
            db = CacheDB(root)
            stack.callback(db.close)
        records = db.fill_sizes(store, db.records())  # least recently used first
        held = store.in_use()
        busy = {r.key for r in records if not held.isdisjoint(r.outputs)}
        victims, skipped = choose(records, all_=all_, keep_storage=keep_storage,
                                  keep_duration=keep_duration, in_use=busy)
        removed = db.remove(store, [r.key for r in victims])
        _release_orphan_leases(db, store)
        freed = store.prune()
        if all_:
            freed += CacheMounts(root).prune()
        db.forget_checksums(set(store.snapshot_ids()))
        clean_key_locks(root)
        freed += _prune_blobs(root, store)
    return PruneResult(removed, freed, len(skipped))


def usage(root: Path) -> Usage | None:
    """The cache's records with their sizes, and its cache mounts (for `llb du`); None when
    the root holds no cache."""
    if not root.exists():
        return None
    with _opening(root):
        reap(root)  # dead processes' containers, before the store removes their mounts
        if not CacheDB.exists(root):
            return None
        db = CacheDB(root)
        try:
            store = Store(root)
        except BaseException:
            db.close()
            raise
    try:
        records = db.fill_sizes(store, db.records())
        blobs = blob_usage(root, store)
        other = _other_snapshots(store, records)
    finally:
        db.close()
        store.close()
    mounts = CacheMounts(root)
    return Usage(records, [(cache_id, mounts.usage(cache_id)) for cache_id in mounts.ids()],
                 blobs, other)


def _other_snapshots(store: Store, records: list[Record]) -> OtherSnapshots:
    named = {o for r in records for o in r.outputs if o is not None}
    others = [sid for sid in store.snapshot_ids() if sid not in named]
    if not others:
        return OtherSnapshots()
    loose = store.unreferenced()
    sizes = {sid: _usage(store, sid) for sid in others}
    return OtherSnapshots(len(others), sum(sizes.values()), len(loose & sizes.keys()),
                          sum(sizes[s] for s in loose if s in sizes))


def _usage(store: Store, sid: str) -> int:
    try:
        return store.usage(sid)
    except LLBError:  # removed meanwhile: nothing on disk
        return 0


def kept_blobs(store: Store) -> set[str]:
    """Digests the remaining snapshots still need: their layer blobs (pulled or packed) and
    what their images' manifests and configs are (the snapshot store records them)."""
    return store.kept_digests()


def blob_usage(root: Path, store: Store) -> list[BlobUsage]:
    """Every blob of the root's content store, and whether something needs it."""
    if not (root / "content").is_dir():
        return []
    from llb.content.store import ContentStore

    with ContentStore(root) as content:
        keep = kept_blobs(store)
        mine = content.session_holder
        return [BlobUsage(b.digest, b.size, b.digest in keep or any(
                    h != mine for h in content.leases(b.digest)))
                for b in content.blobs()]


def _prune_blobs(root: Path, store: Store) -> int:
    """Remove the blobs no remaining snapshot needs and no live process leases; bytes freed."""
    if not (root / "content").is_dir():
        return 0
    from llb.content.store import ContentStore

    with ContentStore(root) as content:
        return content.prune(keep=kept_blobs(store))


@contextmanager
def _opening(root: Path) -> Iterator[None]:
    """Opening the root: an OSError or sqlite error there is one line, a RootError (or a
    NoSpaceError: a full disk)."""
    try:
        yield
    except (OSError, sqlite3.Error) as e:
        raise opening_error(root, e) from None


def _release_orphan_leases(db: CacheDB, store: Store) -> None:
    """Release cache leases whose record is gone (a solve killed between leasing a result
    and recording it), so prune can reclaim those snapshots. A running solve leases before
    it records: its snapshot is held (since it was committed or hit) until the solve ends,
    by when its record exists; so read the leases, then the holds, then the records."""
    leases = [(sid, holder) for sid in store.snapshot_ids() for holder in store.leases(sid)
              if holder.startswith("cache:")]
    held = store.in_use()
    live = {lease_holder(r.key) for r in db.records()}
    for sid, holder in leases:
        if holder not in live and sid not in held:
            store.release(sid, holder)
