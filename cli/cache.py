"""`llb du` and `llb prune`: the cache records under the root."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import click

from llb.errors import LLBError

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2,
          "gib": 1024**3, "tib": 1024**4}
KEEP_DURATION = 48 * 3600  # plain `llb prune` removes records unused this long


class SizeError(LLBError):
    """A size that does not parse (e.g. `--keep-storage 10XB`)."""


def parse_size(text: str) -> int:
    """Bytes from `512`, `10MB`, `1.5GiB`, `100k` (decimal units, or binary with `i`)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise SizeError(f"bad size {text!r} (examples: 500MB, 2GiB, 1048576)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def human_size(n: int) -> str:
    """Sizes as `buildctl du` prints them: 1.23MB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n}{unit}" if unit == "B" else f"{n:.2f}{unit}".replace(".00", "")
        n /= 1000
    return f"{n}"


def _ago(t: float) -> str:
    s = max(0, time.time() - t)
    for unit, secs in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= secs:
            k = int(s // secs)
            return f"{k} {unit}{'s' if k != 1 else ''} ago"
    return "just now"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _open(root: str | None):
    from llb.cli.solve import resolve_root
    from llb.solver.cachedb import CacheDB

    path = resolve_root(root)
    return path, CacheDB(path)


@click.command("du")
@click.option("--verbose", "-v", is_flag=True, help="Every field of every record.")
@click.option("--root", type=click.Path(file_okay=False), help="State directory (default: $LLB_ROOT).")
def du(verbose: bool, root: str | None) -> None:
    """Show the cache records and the disk they use, least recently used first."""
    from llb.cli.solve import resolve_root

    path = resolve_root(root)
    if not (path / "solver" / "cache.db").exists():
        click.echo("Total:\t0B")
        return
    from llb.snapshot import Store

    _, db = _open(root)
    store = Store(path)
    try:
        records = db.fill_sizes(store, db.records())
    finally:
        db.close()
        store.close()
    mounts = _cache_mounts(path)
    total = sum(r.size for r in records) + sum(size for _, size in mounts)
    if verbose:
        for r in records:
            click.echo(f"ID:\t\t{r.key}")
            click.echo(f"Vertex:\t\t{r.vertex}")
            click.echo(f"Description:\t{r.description}")
            click.echo(f"Snapshots:\t{', '.join(s or '(empty)' for s in r.outputs)}")
            click.echo(f"Created at:\t{_iso(r.created)}")
            click.echo(f"Last used:\t{_iso(r.last_used)} ({_ago(r.last_used)})")
            click.echo(f"Size:\t\t{human_size(r.size)}")
            click.echo("")
    else:
        click.echo(f"{'ID':<26}{'SIZE':>10}  {'LAST USED':<18}DESCRIPTION")
        for r in records:
            key = r.key.split(":", 1)[-1][:25]
            click.echo(f"{key:<26}{human_size(r.size):>10}  {_ago(r.last_used):<18}{r.description}")
    for cache_id, size in mounts:
        if verbose:
            click.echo(f"Cache mount:\t{cache_id}\nSize:\t\t{human_size(size)}\n")
        else:
            click.echo(f"{'(cache mount)':<26}{human_size(size):>10}  {'':<18}cache mount {cache_id}")
    n = len(records) + len(mounts)
    click.echo(f"Total:\t{human_size(total)} in {n} record{'s' if n != 1 else ''}")


def _cache_mounts(root) -> list[tuple[str, int]]:
    """(id, bytes) of every cache mount under the root: listed by du like BuildKit's
    exec.cachemount records, though they are never part of a result."""
    from llb.solver.cachemounts import CacheMounts

    mounts = CacheMounts(root)
    return [(cache_id, mounts.usage(cache_id)) for cache_id in mounts.ids()]


@click.command("prune")
@click.option("--all", "all_", is_flag=True,
              help="Remove every cache record and the content of every cache mount not in use.")
@click.option("--keep-storage", metavar="SIZE",
              help="Remove least recently used records until the cache is at most SIZE.")
@click.option("--root", type=click.Path(file_okay=False), help="State directory (default: $LLB_ROOT).")
@click.option("--snapshotter", type=click.Choice(["auto", "overlayfs", "native"]), default="auto")
def prune(all_: bool, keep_storage: str | None, root: str | None, snapshotter: str) -> None:
    """Remove cache records, least recently used first, then the snapshots nothing uses.

    Without options, removes records unused for 48 hours."""
    try:
        keep = parse_size(keep_storage) if keep_storage is not None else None
        _prune(all_, keep, root, snapshotter)
    except LLBError as e:
        from llb.cli.solve import fail

        fail(e)


def _prune(all_: bool, keep: int | None, root: str | None, snapshotter: str) -> None:
    from llb.cli.solve import resolve_root
    from llb.solver.locks import RootLock, clean_key_locks

    path = resolve_root(root)
    if not path.exists():
        click.echo("Total:\t0B reclaimed")
        return
    lock = RootLock(path)
    lock.acquire(exclusive=True)  # waits for running solves
    try:
        from llb.snapshot import Store
        from llb.solver.cachedb import CacheDB

        store = Store(path, snapshotter)
        db = CacheDB(path)
        try:
            records = db.fill_sizes(store, db.records())  # least recently used first
            if all_:
                victims = records
            elif keep is not None:
                total = sum(r.size for r in records)
                victims = []
                for r in records:
                    if total <= keep:
                        break
                    victims.append(r)
                    total -= r.size
            else:
                cutoff = time.time() - KEEP_DURATION
                victims = [r for r in records if r.last_used < cutoff]
            removed = db.remove(store, [r.key for r in victims])
            _release_orphan_leases(db, store)
            freed = store.prune()
            if all_:
                from llb.solver.cachemounts import CacheMounts

                freed += CacheMounts(path).prune()
            ids = getattr(store, "snapshot_ids", None)
            if ids is not None:
                db.forget_checksums(set(ids()))
            clean_key_locks(path)
        finally:
            db.close()
            store.close()
    finally:
        lock.release()
    click.echo(f"Removed {removed} record{'s' if removed != 1 else ''}")
    click.echo(f"Total:\t{human_size(freed)} reclaimed")


def _release_orphan_leases(db, store) -> None:
    """Release cache leases whose record is gone (a solve killed between leasing a result
    and recording it), so prune can reclaim those snapshots."""
    from llb.solver.cachedb import lease_holder

    ids = getattr(store, "snapshot_ids", None)
    leases = getattr(store, "leases", None)
    if ids is None or leases is None:
        return
    live = {lease_holder(r.key) for r in db.records()}
    for sid in ids():
        for holder in leases(sid):
            if holder.startswith("cache:") and holder not in live:
                store.release(sid, holder)
