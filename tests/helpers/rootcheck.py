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


def problems(root: Path) -> list[str]:
    """What is wrong with a root no llb process uses right now (empty: consistent)."""
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
    if holds:
        out.append(f"holds of ended sessions: {sorted({h[0] for h in holds})}")
    return out
