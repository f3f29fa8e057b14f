"""Solver: run a Definition against the snapshot store under one root, using the cache."""

from __future__ import annotations

import os
import sqlite3

from llb.definition import Definition
from llb.errors import DefinitionError
from llb.ops import Copy, FileOp, SourceOp
from llb.records import Record
from llb.resource import Closeable
from llb.snapshot import Ref, Store
from llb.snapshot.space import ensure_reserve
from llb.solver.cachedb import CacheDB
from llb.solver.errors import InputError, opening_error
from llb.solver.orphans import reap
from llb.solver.progress import Progress, ProgressSink
from llb.solver.puller import Puller
from llb.solver.scheduler import Scheduler
from llb.solver.sources import SourceEnv, source_for
from llb.solver.vertex import Vertex, build_graph

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Sequence


class SolveResult(Record):
    """What a solve produced: the output ref (None = empty tree) and the store holding it."""

    ref: Ref | None
    store: Store
    cached: int = 0
    done: int = 0
    explanations: list[tuple[int, str, str]] = []
    names: dict[str, str] = {}  # snapshot id -> name of the (first) vertex that produced it


class Solver(Closeable):
    """Solves definitions under `root`. Everything a solve uses (cache hits, what it
    commits, what it mounts) is held in the store by its session until close(), so a
    concurrent `llb prune` skips it (and never waits for the solve)."""

    def __init__(self, root: str | os.PathLike[str], snapshotter: str = "auto", workers: int = 4,
                 progress: ProgressSink | None = None, *, store: Store | None = None,
                 insecure: Sequence[str] = (), puller: Puller | None = None):
        self.root = os.fspath(root)
        self.workers = max(1, workers)
        self.progress = Progress(progress)
        opened: Store | None = None
        try:  # a root that cannot be used is one line (RootError), not a traceback
            os.makedirs(self.root, exist_ok=True)
            reap(self.root)  # dead processes' containers, before the store reuses their mounts
            ensure_reserve(self.root)  # room for a prune on a full disk (llb.snapshot.space)
            if store is None:
                store = opened = Store(self.root, snapshotter)
            self.db = CacheDB(self.root)
        except BaseException as e:
            if opened is not None:
                opened.close()
            if isinstance(e, (OSError, sqlite3.Error)):
                raise opening_error(self.root, e) from None
            raise
        self.store = store
        # images: resolved and read through it; the store unpacks lazy layers through it
        self.puller = puller if puller is not None else Puller(
            self.root, insecure=insecure, progress=self.progress)
        self.puller.progress = self.progress
        self.store.opener = self.puller

    def close(self) -> None:
        """Release the DB and the store (and with it what this solve held)."""
        self.puller.close()
        self.db.close()
        self.store.close()

    def solve(self, definition: Definition,
              local_dirs: Mapping[str, str | os.PathLike[str]] | None = None,
              no_cache: bool = False, explain: bool = False,
              oci_layouts: Mapping[str, str | os.PathLike[str]] | None = None) -> SolveResult:
        """Resolve the definition's output: each vertex is cached, done or an error.

        Raises SolveError (exit 1) when a vertex fails, InputError/UnsupportedError/
        DefinitionError (exit 2) for bad input, before anything runs where it can tell."""
        env = SourceEnv(_paths(local_dirs), self.db, self.root, _paths(oci_layouts), self.puller)
        vertices, out, out_index = build_graph(definition)
        _check_inputs(vertices, env)
        sched = Scheduler(store=self.store, db=self.db, progress=self.progress, root=self.root,
                          workers=self.workers, vertices=vertices, output=out, env=env,
                          no_cache=no_cache, explain=explain, op_bytes=definition.op_bytes)
        names = {v.digest: (v.name, v.index) for v in vertices}
        self.puller.begin()
        self.puller.cancelled = sched.cancelled
        self.puller.describe = lambda digest: names.get(digest, (digest, 0))
        self.progress.begin(len(vertices))
        try:
            sched.run()
        finally:
            self.puller.cancelled = None
            self.progress.end()
        if sched.error is not None:
            raise sched.error
        if out.outputs is None:
            raise DefinitionError("the solve finished without resolving its output", vertex=out.digest)
        if out_index >= len(out.outputs):
            raise DefinitionError(f"op has no output {out_index}", vertex=out.digest)
        ref = sched.ref(out, out_index)
        return SolveResult(
            ref=ref, store=self.store,
            cached=sum(1 for v in vertices if v.terminal == "cached"),
            done=sum(1 for v in vertices if v.terminal == "done"),
            explanations=sorted(sched.explanations),
            names=_snapshot_names(vertices),
        )


def _paths(named: Mapping[str, str | os.PathLike[str]] | None) -> dict[str, Path]:
    """The `--local` or `--oci-layout` directories as Paths (pathlib only when there are)."""
    if not named:
        return {}
    from pathlib import Path  # not for a solve without any (pathlib loads re, enum, ...)

    return {k: Path(v) for k, v in named.items()}


def _snapshot_names(vertices: list[Vertex]) -> dict[str, str]:
    """Snapshot id -> the name of the first vertex (inputs come first) that resolved to it:
    what image history entries are named after."""
    names: dict[str, str] = {}
    for v in vertices:
        for sid in v.outputs or ():
            if sid is not None and sid not in names:
                names[sid] = v.name
    return names


def _check_inputs(vertices: list[Vertex], env: SourceEnv) -> None:
    """Bad input found before anything runs: each source's own checks (a missing --local
    mapping, a bad include pattern), copies' include/exclude patterns, then copies of paths
    a source does not have."""
    for v in vertices:
        if isinstance(v.op, SourceOp):
            source_for(v.op, v.digest).check(v.op, env, v.digest)
        elif isinstance(v.op, FileOp):
            for a in v.op.actions:
                if isinstance(a, Copy) and (a.include or a.exclude):
                    from llb.solver.patterns import PathFilter  # (only copies that filter)

                    try:
                        PathFilter(a.include, a.exclude)
                    except InputError as e:
                        e.vertex = v.digest
                        raise
    for v in vertices:
        for pos, copies in v.partial.items():
            u, _ = v.inputs[pos]
            if isinstance(u.op, SourceOp):
                source_for(u.op, v.digest).check_copies(u.op, env, v.digest, copies)
