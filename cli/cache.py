"""`llb du` and `llb prune`: the cache records under the root."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import click

from llb.cli.sizes import human_size, parse_size
from llb.cli.solving import fail, no_space, resolve_root
from llb.errors import LLBError
from llb.solver.gc import prune as prune_cache, usage


def _ago(t: float) -> str:
    s = max(0, time.time() - t)
    for unit, secs in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= secs:
            k = int(s // secs)
            return f"{k} {unit}{'s' if k != 1 else ''} ago"
    return "just now"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.command("du")
@click.option("--verbose", "-v", is_flag=True, help="Every field of every record.")
@click.option("--root", type=click.Path(file_okay=False), help="State directory (default: $LLB_ROOT).")
def du(verbose: bool, root: str | None) -> None:
    """Show the cache records and the disk they use, least recently used first."""
    try:
        cache = usage(Path(resolve_root(root)))
    except LLBError as e:
        fail(e)
        return
    except OSError as e:
        err = no_space(e, resolve_root(root))
        if err is None:
            raise
        fail(err)
        return
    if cache is None:
        click.echo("Total:\t0B")
        return
    records, mounts = cache.records, cache.cache_mounts
    total = cache.total
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
    for blob in cache.blobs:
        use = "in use" if blob.in_use else "unused"
        if verbose:
            click.echo(f"Blob:\t\t{blob.digest}\nSize:\t\t{human_size(blob.size)}\n"
                       f"In use:\t\t{'yes' if blob.in_use else 'no'}\n")
        else:
            short = blob.digest.split(":", 1)[-1][:25]
            click.echo(f"{short:<26}{human_size(blob.size):>10}  {use:<18}blob {blob.digest}")
    other = cache.other
    if other.snapshots:
        what = (f"{other.snapshots} snapshot{'s' if other.snapshots != 1 else ''} no record names"
                + (f" ({other.unreferenced} unreferenced, {human_size(other.unreferenced_size)}:"
                   " the next prune removes them)" if other.unreferenced else ""))
        if verbose:
            click.echo(f"Other snapshots:\t{what}\nSize:\t\t{human_size(other.size)}\n")
        else:
            click.echo(f"{'(other snapshots)':<26}{human_size(other.size):>10}  {'':<18}{what}")
    n = len(records) + len(mounts)
    blobs = f" and {len(cache.blobs)} blob{'s' if len(cache.blobs) != 1 else ''}" \
        if cache.blobs else ""
    click.echo(f"Total:\t{human_size(total)} in {n} record{'s' if n != 1 else ''}{blobs}")


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
        fail(e)
    except OSError as e:
        err = no_space(e, resolve_root(root))
        if err is None:
            raise
        fail(err)


def _prune(all_: bool, keep: int | None, root: str | None, snapshotter: str) -> None:
    path = Path(resolve_root(root))
    if not path.exists():
        click.echo("Total:\t0B reclaimed")
        return
    result = prune_cache(path, all_=all_, keep_storage=keep, snapshotter=snapshotter)
    click.echo(f"Removed {result.removed} record{'s' if result.removed != 1 else ''}")
    if result.skipped:
        click.echo(f"Skipped {result.skipped} record{'s' if result.skipped != 1 else ''} in use"
                   " by running builds")
    click.echo(f"Total:\t{human_size(result.freed)} reclaimed")
