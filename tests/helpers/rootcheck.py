"""A root's consistency, read independently of llb's code: its snapshot directories against
its metadata DB, its cache records against its snapshots, and what no process should leave
behind once every `llb` command has ended (mounts, containers, temporaries, holds)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from leftovers import containers, mounts_under, session_temps


def _rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def snapshot_rows(root: Path) -> set[str]:
    return {r[0] for r in _rows(root / "metadata.db", "SELECT id FROM snapshots")}


def snapshot_dirs(root: Path) -> set[str]:
    d = root / "snapshots"
    return set(os.listdir(d)) if d.is_dir() else set()


def record_outputs(root: Path) -> dict[str, set[str]]:
    """Cache key -> the snapshot ids its record names."""
    return {k: {o for o in outs.split(",") if o and o != "-"}
            for k, outs in _rows(root / "solver" / "cache.db", "SELECT key, outputs FROM records")}


def problems(root: Path, *, settled: bool = True) -> list[str]:
    """What is wrong with a root no llb process uses right now (empty: consistent).
    settled=False: right after a command that failed on a full disk, whose store could not
    drop its holds (the next open drops them: they are not counted)."""
    out = []
    if mounts_under(root):
        out.append(f"mounts left: {mounts_under(root)}")
    if containers(root):
        out.append(f"containers left: {containers(root)}")
    if session_temps(root):
        out.append(f"session temporaries left: {session_temps(root)}")
    rows, dirs = snapshot_rows(root), snapshot_dirs(root)
    if dirs - rows:
        out.append(f"snapshot directories without a row: {sorted(dirs - rows)}")
    if rows - dirs:
        out.append(f"snapshot rows without a directory: {sorted(rows - dirs)}")
    for key, outs in record_outputs(root).items():
        if outs - rows:
            out.append(f"record {key} names missing snapshots {sorted(outs - rows)}")
    holds = _rows(root / "metadata.db", "SELECT session FROM holds") \
        if (root / "metadata.db").exists() else []
    if holds and settled:
        out.append(f"holds of ended sessions: {sorted({h[0] for h in holds})}")
    return out


# ------------------------------------------------------------------------ du and the disk
#
# "`llb du` agrees with the disk" means, for a root no llb process uses:
#  1. the root is consistent (problems() is empty): the snapshot directories are exactly
#     the snapshots the metadata DB lists, and every record's snapshots are among them;
#  2. every byte of every snapshot directory is in du's total: du's total equals, measured
#     here without llb's code (directories' blocks and each inode's blocks once per
#     directory tree), each record's distinct snapshot directories, plus the snapshots no
#     record names, plus each cache mount's directory, plus the content store's blobs;
#  3. du's "unreferenced" snapshots are exactly those that no lease and no hold keeps and
#     that nothing kept depends on (computed here from the DB's tables);
#  4. the CLI's `Total:` line says that total.
# After `llb prune --all` (checked where the root has a filesystem of its own): no record
# and no snapshot is left, and the filesystem's used blocks are those of an empty
# filesystem plus the root's remaining files (databases, locks, the reserve, executor
# state, cache mount ids): nothing unaccounted for is on the disk.


def tree_bytes(path: Path) -> int:
    """st_blocks * 512 of every directory and (once) every other inode under path (itself
    included); iterative, so any depth."""
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return 0
    total = top.st_blocks * 512
    seen: set[tuple[int, int]] = set()
    stack = [os.fsencode(path)] if os.path.isdir(path) and not os.path.islink(path) else []
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                if e.is_dir(follow_symlinks=False):
                    total += st.st_blocks * 512
                    stack.append(e.path)
                elif (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def unreferenced(root: Path) -> set[str]:
    """Snapshots no lease or hold keeps and nothing kept depends on (from the DB)."""
    db = root / "metadata.db"
    rows = {r[0]: r[1] for r in _rows(db, "SELECT id, parent FROM snapshots")}
    inputs: dict[str, list[str]] = {}
    for sid, inp in _rows(db, "SELECT id, input FROM inputs"):
        inputs.setdefault(sid, []).append(inp)
    roots = {r[0] for r in _rows(db, "SELECT id FROM leases")}
    for (ids,) in _rows(db, "SELECT ids FROM holds"):
        roots.update(ids.split(","))
    keep: set[str] = set()
    stack = [r for r in roots if r in rows]
    while stack:
        sid = stack.pop()
        if sid in keep:
            continue
        keep.add(sid)
        if rows[sid]:
            stack.append(rows[sid])
        stack.extend(i for i in inputs.get(sid, ()) if i in rows)
    return set(rows) - keep


def du_disagreements(root: Path, llb: str) -> list[str]:
    """Where `llb du` (run here) and the disk disagree, in the sense above."""
    import subprocess

    from llb.cli.sizes import human_size
    from llb.solver.gc import usage

    p = subprocess.run([llb, "du", "--root", str(root)], capture_output=True, text=True,
                       timeout=300)
    if p.returncode != 0:
        return [f"llb du failed: {p.stderr.strip()}"]
    out = problems(root)
    u = usage(root)
    if u is None:
        return out + ([] if not snapshot_dirs(root) else ["du sees no cache, the disk does"])
    named: set[str] = set()
    want = 0
    for r in u.records:
        outs = {o for o in r.outputs if o is not None}
        size = sum(tree_bytes(root / "snapshots" / o) for o in outs)
        if size != r.size:
            out.append(f"record {r.key}: du says {r.size} bytes, its snapshots hold {size}")
        named |= outs
        want += size
    others = snapshot_rows(root) - named
    other_bytes = sum(tree_bytes(root / "snapshots" / o) for o in others)
    if (u.other.snapshots, u.other.size) != (len(others), other_bytes):
        out.append(f"other snapshots: du says {u.other.snapshots} of {u.other.size} bytes, the "
                   f"disk holds {len(others)} of {other_bytes}")
    want += other_bytes
    loose = unreferenced(root) & others
    if u.other.unreferenced != len(loose):
        out.append(f"unreferenced: du says {u.other.unreferenced}, the DB says {len(loose)}")
    mounts = root / "cache-mounts"
    if mounts.is_dir():
        want += sum(tree_bytes(d) for d in mounts.iterdir())
    blobs = root / "content" / "blobs" / "sha256"
    if blobs.is_dir():
        want += sum(os.lstat(b).st_size for b in blobs.iterdir())
    if u.total != want:
        out.append(f"du's total is {u.total} bytes, the disk holds {want}")
    total_line = [line for line in p.stdout.splitlines() if line.startswith("Total:")]
    if not total_line or total_line[0].split()[1] != human_size(want):
        out.append(f"llb du printed {total_line}, the disk holds {human_size(want)}")
    return out
