"""Solver: run a Definition against the snapshot store under one root, using the cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from llb.errors import DefinitionError
from llb.solver.cachedb import CacheDB
from llb.solver.errors import InputError
from llb.solver.locks import RootLock
from llb.solver.progress import Progress, ProgressSink
from llb.solver.vertex import Vertex, build_graph


class SolveResult(NamedTuple):
    """What a solve produced: the output ref (None = empty tree) and the store holding it."""

    ref: Any
    store: Any
    cached: int = 0
    done: int = 0
    explanations: list[tuple[int, str, str]] | tuple = ()


class Solver:
    """Solves definitions under `root`. Holds the root's shared prune lock until close(), so
    a concurrent `llb prune` never removes what a solve (or its export) is using."""

    def __init__(self, root: Path, snapshotter: str = "auto", workers: int = 4,
                 progress: ProgressSink | None = None, *, store: Any = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.workers = max(1, workers)
        self.progress = Progress(progress)
        self._root_lock = RootLock(self.root)
        self._root_lock.acquire(exclusive=False)
        if store is None:
            from llb.snapshot import Store

            store = Store(self.root, snapshotter)
        self.store = store
        self.db = CacheDB(self.root)

    def close(self) -> None:
        """Release the DB, the store and the root lock."""
        self.db.close()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
        self._root_lock.release()

    def __enter__(self) -> "Solver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def solve(self, definition: Any, locals: dict[str, Path] | None = None,
              no_cache: bool = False, explain: bool = False) -> SolveResult:
        """Resolve the definition's output: each vertex is cached, done or an error.

        Raises SolveError (exit 1) when a vertex fails, InputError/UnsupportedError/
        DefinitionError (exit 2) for bad input, before anything runs where it can tell."""
        from llb.solver.scheduler import Scheduler

        locals = {k: Path(v) for k, v in (locals or {}).items()}
        vertices, out, out_index = build_graph(definition)
        _check_inputs(vertices, locals)
        sched = Scheduler(self, vertices, out, locals, no_cache, explain,
                          op_bytes=getattr(definition, "op_bytes", None))
        self.progress.begin(len(vertices))
        try:
            sched.run()
        finally:
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
        )


def _check_inputs(vertices: list[Vertex], locals: dict[str, Path]) -> None:
    """Bad input found before anything runs: missing --local mappings, copies of paths a
    local source does not have."""
    from llb.solver.ops.source import local_name

    for v in vertices:
        op = v.op
        if op.kind == "source":
            name = local_name(op)
            if name is None:
                continue
            path = locals.get(name)
            if path is None:
                raise InputError(f"no --local mapping for local source {name!r} "
                                 f"(pass --local {name}=PATH)", vertex=v.digest)
            if not path.is_dir():
                raise InputError(f"--local {name}={path}: not a directory", vertex=v.digest,
                                 path=os.fspath(path))
    for v in vertices:
        for pos, copies in v.partial.items():
            u, idx = v.inputs[pos]
            name = local_name(u.op) if u.op.kind == "source" else None
            if name is not None and not u.op.include and not u.op.exclude:
                for c in copies:
                    _copy_source_exists(locals[name], c, v.digest)
            elif name is not None:
                _copies_in_filtered_local(locals[name], u.op, copies, v.digest)
            elif u.op.kind == "source" and u.op.identifier == "scratch":
                from llb.solver.checksum import copy_checksum

                for c in copies:
                    copy_checksum(None, c, vertex=v.digest)


def _copy_source_exists(top: Path, copy: Any, vertex: str) -> None:
    """Raise InputError when `copy.src` is not in the tree at `top`."""
    from llb.solver.checksum import copy_matches, has_wildcard

    if copy_matches(top, copy):
        return
    if copy.allow_wildcard and copy.allow_empty_wildcard and has_wildcard(copy.src):
        return
    raise InputError(f"copy source {copy.src} not found", vertex=vertex, path=copy.src)


def _copies_in_filtered_local(top: Path, source: Any, copies: list, vertex: str) -> None:
    """Raise InputError when a plain (non-wildcard) copy source is not among the files a
    local source with include/exclude selects."""
    from llb.solver.checksum import has_wildcard
    from llb.solver.patterns import PathFilter, walk

    plain = [c for c in copies if not (c.allow_wildcard and has_wildcard(c.src))]
    if not plain:
        return
    selected = {rel for rel, _ in walk(top, PathFilter(source.include, source.exclude))}
    for c in plain:
        rel = os.path.normpath("/" + c.src).strip("/")
        if rel and rel not in selected:
            raise InputError(f"copy source {c.src} not found", vertex=vertex, path=c.src)
